// Jest runs each suite in its own VM context, whose Error is not the Error of Node's own fetch. The
// openai SDK checks `err instanceof Error` to recognise an aborted (timed-out) fetch; in a separate
// context that check fails and a timeout looks like a connection error. Sharing Node's Error keeps the
// SDK behaving in tests as it does in production.
const { TestEnvironment } = require('jest-environment-node');

class SharedErrorEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.global.Error = Error;
  }
}

module.exports = SharedErrorEnvironment;
