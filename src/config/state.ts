import { absent, child, fail, integer, type LoadContext, root, section, text } from "./fields.js";
import type { StateConfig } from "./gateway-config.js";
import { fromLabel, resolveSecret } from "./secret-ref.js";

/** Defaults of the `state` section. */
export const stateDefaults = {
  store: "memory",
  timeoutMs: 50,
  fail: "open",
  prefix: "coze-gateway:",
  flushMs: 50,
  share: 64,
} as const;

const urlRule = "a Redis URL redis://[:password@]host[:port][/db] or rediss://…";

/**
 * Reads the optional `state` section: `store` (`memory` or `redis`), and for Redis its `url`
 * (inline, `env:NAME` or `file:PATH`; it may hold a password, so it is a secret and no message
 * quotes it), `timeout_ms`, `fail` (`open` or `closed`), `prefix`, `flush_ms` and `share`.
 *
 * @throws ConfigError for an unknown field or store, a missing or malformed URL with `redis`, a
 *   URL with `memory`, or a number out of range.
 */
export async function readState(ctx: LoadContext, value: unknown): Promise<StateConfig> {
  const place = child(root, "state");
  const map = section(ctx, place, value, [
    "store",
    "url",
    "timeout_ms",
    "fail",
    "prefix",
    "flush_ms",
    "share",
  ]);
  const storePlace = child(place, "store");
  const store = text(ctx, storePlace, map.store, "memory or redis") ?? stateDefaults.store;
  if (store !== "memory" && store !== "redis") fail(ctx, storePlace, "must be memory or redis");
  const failPlace = child(place, "fail");
  const failMode = text(ctx, failPlace, map.fail, "open or closed") ?? stateDefaults.fail;
  if (failMode !== "open" && failMode !== "closed") fail(ctx, failPlace, "must be open or closed");
  const prefixPlace = child(place, "prefix");
  const prefix =
    text(ctx, prefixPlace, map.prefix, "up to 64 printable characters") ?? stateDefaults.prefix;
  if (!/^[\x21-\x7e]{0,64}$/.test(prefix)) {
    fail(ctx, prefixPlace, "must be up to 64 printable ASCII characters without spaces");
  }
  const timeoutMs = integer(ctx, child(place, "timeout_ms"), map.timeout_ms, {
    min: 1,
    max: 10_000,
    fallback: stateDefaults.timeoutMs,
  });
  const flushMs = integer(ctx, child(place, "flush_ms"), map.flush_ms, {
    min: 1,
    max: 60_000,
    fallback: stateDefaults.flushMs,
  });
  const share = integer(ctx, child(place, "share"), map.share, {
    min: 0,
    max: 1000,
    fallback: stateDefaults.share,
  });
  const urlPlace = child(place, "url");
  let url = "";
  if (store === "memory") {
    if (!absent(map.url)) fail(ctx, urlPlace, "is set but store is memory; set store: redis");
  } else {
    const secret = await resolveSecret(ctx, urlPlace, map.url, {
      expected: `${urlRule}, env:NAME or file:PATH`,
      secret: true,
      inConfigText: true,
    });
    url = secret.text.trim();
    if (!validRedisUrl(url)) fail(ctx, urlPlace, `must be ${urlRule}${fromLabel(secret)}`);
  }
  return { store, url, timeoutMs, fail: failMode, prefix, flushMs, share };
}

/** A `redis:` or `rediss:` URL with a host, and at most a database number as its path. */
function validRedisUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return (
    (url.protocol === "redis:" || url.protocol === "rediss:") &&
    url.hostname !== "" &&
    /^(\/\d{0,2})?$/.test(url.pathname) &&
    url.search === "" &&
    url.hash === ""
  );
}
