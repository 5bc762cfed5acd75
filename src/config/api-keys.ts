import { hash } from "node:crypto";
import {
  absent,
  asList,
  asMapping,
  attemptAsync,
  child,
  fail,
  flag,
  item,
  kindOf,
  type LoadContext,
  onlyKnownKeys,
  type Place,
  required,
  root,
  text,
} from "./fields.js";
import type { ApiKeyConfig } from "./gateway-config.js";
import { readKeyLimits } from "./limits.js";
import { readPrintableSecret } from "./printable-secret.js";

const keyFields = ["name", "key", "sha256", "models", "raw_coze_ids", "limits"];
const nameRule = "a key name of 1 to 64 printable characters";
const minKeyLength = 16;

/**
 * SHA-256 of a caller API key (its UTF-8 bytes), 32 bytes: what `ApiKeyConfig.sha256` holds.
 * Compare with `crypto.timingSafeEqual`.
 */
export function hashApiKey(key: string): Buffer {
  // The one-shot form: no Hash object per request (it runs on every authenticated call).
  return hash("sha256", key, "buffer");
}

/** {@link hashApiKey} in base64, for a lookup by hash. */
export function apiKeyDigest(key: string): string {
  return hash("sha256", key, "base64");
}

/**
 * Whether `key` may use `model`. No allow-list allows every model; otherwise an entry matches
 * when it equals the name, or ends in `*` and the name starts with what precedes it
 * (`workflow:*` matches every `workflow:{id}`; `*` alone matches all).
 */
export function modelAllowed(
  key: { readonly models: readonly string[] | undefined },
  model: string,
): boolean {
  if (key.models === undefined) return true;
  return key.models.some((entry) =>
    entry.endsWith("*") ? model.startsWith(entry.slice(0, -1)) : entry === model,
  );
}

/**
 * Reads `api_keys`: at least one; each with a unique `name` and either `key` (inline, `env:NAME`
 * or `file:PATH`; at least 16 printable characters, surrounding whitespace ignored; hashed at
 * once and never kept) or `sha256` (64 hex characters), plus an optional `models` allow-list and
 * `raw_coze_ids` (default false: only ids the gateway handed this key are accepted), and
 * `limits` (see `readKeyLimits`).
 *
 * @throws ConfigError naming the key (`api_keys[alice]`) and the field; never quoting a key.
 */
export async function readApiKeys(ctx: LoadContext, value: unknown): Promise<ApiKeyConfig[]> {
  const place = child(root, "api_keys");
  const list = asList(ctx, place, value, "a list of caller keys, at least one");
  if (list.length === 0) fail(ctx, place, "is empty; expected at least one caller key");
  const keys: ApiKeyConfig[] = [];
  for (const [i, entry] of list.entries()) {
    // A bad key is reported and the next one read: every problem of the list at once.
    const key = await attemptAsync(ctx, undefined, () => readApiKey(ctx, i, entry, keys));
    if (key !== undefined) keys.push(key);
  }
  return keys;
}

async function readApiKey(
  ctx: LoadContext,
  i: number,
  entry: unknown,
  keys: readonly ApiKeyConfig[],
): Promise<ApiKeyConfig> {
  const place = child(root, "api_keys");
  const map = asMapping(ctx, item(place, i), entry, "a mapping with name and key or sha256");
  const namePlace = child(item(place, i), "name");
  required(ctx, namePlace, map.name, nameRule);
  const name = text(ctx, namePlace, map.name, nameRule) ?? "";
  if (!/^[^\p{Cc}[\]]{1,64}$/u.test(name) || name.trim() !== name) {
    fail(ctx, namePlace, `must be ${nameRule}, without surrounding spaces or brackets`);
  }
  const earlier = keys.findIndex((k) => k.name === name);
  if (earlier >= 0) fail(ctx, namePlace, `${name} is already the name of api_keys[${earlier}]`);
  const at = item(place, name);
  onlyKnownKeys(ctx, at, map, keyFields);
  const sha256 = await readHash(ctx, at, map);
  const twin = keys.find((k) => k.sha256.equals(sha256));
  if (twin !== undefined)
    fail(ctx, at, `has the same key as api_keys[${twin.name}]; give each caller its own`);
  return {
    name,
    sha256,
    models: readAllowList(ctx, child(at, "models"), map.models),
    rawCozeIds: flag(ctx, child(at, "raw_coze_ids"), map.raw_coze_ids, false),
    limits: readKeyLimits(ctx, child(at, "limits"), map.limits),
  };
}

async function readHash(
  ctx: LoadContext,
  at: Place,
  map: Record<string, unknown>,
): Promise<Buffer> {
  if (!absent(map.key) && !absent(map.sha256)) fail(ctx, at, "has both key and sha256; give one");
  if (absent(map.key)) {
    const place = child(at, "sha256");
    const rule = "the SHA-256 of the key as 64 hexadecimal characters";
    if (absent(map.sha256))
      fail(ctx, at, "needs key (the key, env:NAME or file:PATH) or sha256 (its SHA-256 in hex)");
    const hex = text(ctx, place, map.sha256, rule) ?? "";
    if (!/^[0-9a-fA-F]{64}$/.test(hex)) fail(ctx, place, `must be ${rule}`);
    return Buffer.from(hex, "hex");
  }
  const key = await readPrintableSecret(ctx, child(at, "key"), map.key, {
    expected: "an API key, env:NAME or file:PATH",
    minLength: minKeyLength,
  });
  return hashApiKey(key);
}

function readAllowList(ctx: LoadContext, place: Place, value: unknown): string[] | undefined {
  if (absent(value)) return undefined;
  const rule = "a list of model names or prefixes ending in *";
  const list = asList(ctx, place, value, rule);
  if (list.length === 0)
    fail(ctx, place, "is empty, which allows no model; list models, or remove it to allow all");
  return list.map((entry, i) => {
    const at = item(place, i);
    if (typeof entry !== "string")
      fail(ctx, at, `must be a model name or a prefix ending in *, not ${kindOf(entry)}`);
    if (entry.trim() === "")
      fail(ctx, at, "is empty; expected a model name or a prefix ending in *");
    if (entry.slice(0, -1).includes("*"))
      fail(ctx, at, "may hold * only at its end, as a prefix wildcard");
    return entry;
  });
}

/**
 * Warns about allow-list entries that can match no model: an exact name that is neither routed
 * nor dynamic (`workflow:{id}`…), a prefix that covers neither.
 */
export function checkAllowLists(
  ctx: LoadContext,
  keys: readonly ApiKeyConfig[],
  routed: readonly string[],
  resolves: (name: string) => boolean,
  dynamicPrefixes: readonly string[],
): void {
  for (const key of keys) {
    for (const entry of key.models ?? []) {
      const prefix = entry.endsWith("*") ? entry.slice(0, -1) : undefined;
      const matches =
        prefix === undefined
          ? resolves(entry)
          : routed.some((name) => name.startsWith(prefix)) ||
            dynamicPrefixes.some((d) => d.startsWith(prefix) || prefix.startsWith(d));
      if (!matches) {
        ctx.warnings.push(
          `${ctx.file}: api_keys[${key.name}].models: ${JSON.stringify(entry)} matches no model of any channel`,
        );
      }
    }
  }
}
