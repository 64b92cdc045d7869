/**
 * A call can be prepared before it may be sent. The pipeline checks the limits (a Redis round trip) while the
 * openai SDK builds the request, and the SDK sends it only once the check has passed: the round trip and the
 * SDK's work overlap instead of adding up. The SDK waits in its own prepareRequest hook, the last step before
 * its fetch, so a gate that fails stops the call before anything is sent, and is neither retried nor mapped.
 */
export type SendGate = Promise<void>;

/** What a failed gate rejects with: the call was never sent; `reason` is why (a 429, a 503). */
export class NotSentError extends Error {
  constructor(readonly reason: unknown) {
    super('The call was stopped before it was sent');
  }
}

/** A gate that opens when `check` resolves and fails, with NotSentError, when it rejects. */
export function sendGate(check: Promise<unknown>): SendGate {
  const gate = check.then(
    () => undefined,
    (reason: unknown) => {
      throw new NotSentError(reason);
    },
  );
  // Whoever sends the call awaits the gate; one that fails before it got there must not leave it unhandled.
  gate.catch(() => undefined);
  return gate;
}

/** The request options of a gated call, as the SDK's prepareRequest hook receives them. */
export interface GatedRequestOptions {
  sendWhen?: SendGate;
}
