import { Matches } from 'class-validator';

/**
 * A model name: printable ASCII without spaces, as LiteLLM's model names are. Names end up in response
 * headers (x-llm-model) and in metric labels, where CR, LF, NUL or non-Latin-1 characters would break them.
 */
export const MODEL_NAME = /^[\x21-\x7e]{1,200}$/;

/** For a property holding a model name; the message names the rule. */
export const IsModelName = () =>
  Matches(MODEL_NAME, { message: '$property must be a model name: 1 to 200 printable ASCII characters without spaces' });

/** The response header naming the model the gateway asked LiteLLM for. */
export const MODEL_HEADER = 'x-llm-model';

/** A header value is built only from a string that passed this. */
export function isModelName(value: unknown): value is string {
  return typeof value === 'string' && MODEL_NAME.test(value);
}
