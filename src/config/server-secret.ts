import { child, fail, type LoadContext, root } from "./fields.js";
import { readPrintableSecret } from "./printable-secret.js";

const expected = "a random secret of at least 32 characters, env:NAME or file:PATH";
const howTo = "generate one with `openssl rand -base64 32` and give every replica the same";

/**
 * Reads `server_secret`: the key from which the gateway derives, per API key, the tag of every
 * id it hands out (conversations, chats, runs, interrupts), the Coze `user_id` and the JWT
 * `session_name`. Required; inline, `env:NAME` or `file:PATH`; at least 32 printable
 * characters, surrounding whitespace ignored. Every replica needs the same one.
 *
 * @returns its UTF-8 bytes.
 * @throws ConfigError when it is missing, too short or not printable; never quoting it.
 */
export async function readServerSecret(ctx: LoadContext, value: unknown): Promise<Buffer> {
  const place = child(root, "server_secret");
  if (value === undefined || value === null) {
    fail(ctx, place, `is required: ${expected}. It binds the ids handed to each API key; ${howTo}`);
  }
  const text = await readPrintableSecret(ctx, place, value, {
    expected,
    minLength: 32,
    hint: howTo,
  });
  return Buffer.from(text, "utf8");
}
