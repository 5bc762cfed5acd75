import { fail, type LoadContext, type Place } from "./fields.js";
import { fromLabel, resolveSecret } from "./secret-ref.js";

/**
 * Reads a secret that is a token of printable ASCII (an API key, the server secret): inline,
 * `env:NAME` or `file:PATH`. Surrounding whitespace is a trailing newline from a file or an env
 * file, never part of the token (header values are trimmed too), so it is dropped.
 *
 * @param expected completes "must be …", e.g. `an API key, env:NAME or file:PATH`.
 * @param hint appended to the too-short message, e.g. how to generate one.
 * @throws ConfigError when it is missing, not printable ASCII without spaces, or shorter than
 *   `minLength`; naming where it came from, never quoting it.
 */
export async function readPrintableSecret(
  ctx: LoadContext,
  place: Place,
  value: unknown,
  rule: { expected: string; minLength: number; hint?: string },
): Promise<string> {
  const secret = await resolveSecret(ctx, place, value, {
    expected: rule.expected,
    secret: true,
    inConfigText: true,
  });
  const text = secret.text.trim();
  const from = fromLabel(secret);
  if (!/^[\x21-\x7e]+$/.test(text))
    fail(ctx, place, `must be printable ASCII without spaces${from}`);
  if (text.length < rule.minLength) {
    const hint = rule.hint === undefined ? "" : `; ${rule.hint}`;
    fail(ctx, place, `is too short: use at least ${rule.minLength} characters${from}${hint}`);
  }
  return text;
}
