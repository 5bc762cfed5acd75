/**
 * The payload of the ids the OpenAI doors hand out (tool call ids, response ids): base64url of
 * the JSON text of three strings. They carry the service's own ids, already bound to the API key
 * (`{cozeId}.{tag}`), so the gateway stores nothing and any replica reads them.
 */
export function encodeIdPayload(values: readonly [string, string, string]): string {
  return Buffer.from(JSON.stringify(values), "utf8").toString("base64url");
}

const base64url = /^[A-Za-z0-9_-]+$/;
const maxLength = 1024;

/**
 * Reads a payload made by {@link encodeIdPayload}: the three strings, or `undefined` for anything
 * else (too long, not base64url, not a JSON array of three strings). Never throws.
 */
export function decodeIdPayload(payload: string): [string, string, string] | undefined {
  if (payload.length > maxLength || !base64url.test(payload)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length !== 3) return undefined;
  if (!value.every((v) => typeof v === "string")) return undefined;
  return value as [string, string, string];
}
