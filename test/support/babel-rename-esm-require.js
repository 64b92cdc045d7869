// Some ES modules in node_modules declare `const require = createRequire(import.meta.url)`. Once Babel
// turns their imports into require() calls for Jest, that local binding would shadow the real one, so
// it gets a name of its own first.
module.exports = () => ({
  visitor: {
    Program(path) {
      if (path.scope.hasOwnBinding('require')) {
        path.scope.rename('require', path.scope.generateUidIdentifier('esmRequire').name);
      }
    },
  },
});
