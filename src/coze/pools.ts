import { type Dispatcher, Pool } from "undici";

/** Timeouts applied to every connection and request of a pool, in milliseconds. */
export interface PoolTimeouts {
  /** Time to establish a TCP (and TLS) connection. Default 5 000. */
  connectMs?: number;
  /** Time from sending the request to receiving the response headers. Default 30 000. */
  headersMs?: number;
  /**
   * Longest silence between two body chunks. For streams this is the idle timeout: a stalled
   * Coze stream fails after this long. Default 60 000.
   */
  bodyMs?: number;
  /** How long an idle keep-alive socket is kept. Default 30 000. */
  keepAliveMs?: number;
}

/** Options for {@link createPools}. */
export interface PoolsOptions extends PoolTimeouts {
  /**
   * Most sockets per origin. Every open Coze event stream holds one (HTTP/1.1), so this bounds
   * the streams the gateway can relay at once; further calls queue. Default 1024.
   */
  connections?: number;
}

/**
 * One pooled undici dispatcher per origin (scheme, host and port), created on first use. Token
 * requests and API calls to the same Coze host share sockets.
 */
export interface Pools {
  /**
   * The dispatcher for `url`'s origin; `connectMs` overrides the connect timeout (one pool per
   * origin and timeout, so channels with their own `connect_ms` do not share sockets).
   * Throws `TypeError` for a URL that is not http(s).
   */
  get(url: string | URL, options?: { connectMs?: number }): Dispatcher;
  /**
   * Closes every pool but those `keep` names (as `get` takes them): each waits for its requests
   * under way, then closes its sockets. For the pools of channels a config reload removed, once
   * their last call has ended; a later `get` of one makes a new pool.
   */
  retain(keep: Iterable<{ url: string | URL; connectMs?: number }>): Promise<void>;
  /** Closes every pool: waits for requests under way, then closes the sockets. */
  close(): Promise<void>;
  /** Destroys every pool at once, failing requests under way. */
  destroy(): Promise<void>;
}

/** Default timeouts, exported so callers can document and reuse them. */
export const defaultPoolTimeouts: Required<PoolTimeouts> = {
  connectMs: 5_000,
  headersMs: 30_000,
  bodyMs: 60_000,
  keepAliveMs: 30_000,
};

/** Creates the per-origin pools. Nothing connects until the first request. */
export function createPools(options: PoolsOptions = {}): Pools {
  const pools = new Map<string, Pool>();
  const timeouts = { ...defaultPoolTimeouts, ...stripUndefined(options) };
  const keyOf = (url: string | URL, connectMs: number | undefined) => {
    const parsed = typeof url === "string" ? new URL(url) : url;
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new TypeError(`unsupported protocol ${parsed.protocol} in Coze base URL`);
    }
    return { origin: parsed.origin, key: `${parsed.origin} ${connectMs ?? timeouts.connectMs}` };
  };
  return {
    get(url, overrides) {
      const connectMs = overrides?.connectMs ?? timeouts.connectMs;
      const { origin, key } = keyOf(url, connectMs);
      let pool = pools.get(key);
      if (pool === undefined) {
        pool = new Pool(origin, {
          connections: options.connections ?? 1024,
          connect: { timeout: connectMs },
          headersTimeout: timeouts.headersMs,
          bodyTimeout: timeouts.bodyMs,
          keepAliveTimeout: timeouts.keepAliveMs,
        });
        pools.set(key, pool);
      }
      return pool;
    },
    async retain(keep) {
      const kept = new Set<string>();
      for (const ref of keep) kept.add(keyOf(ref.url, ref.connectMs).key);
      const closing: Promise<void>[] = [];
      for (const [key, pool] of pools) {
        if (kept.has(key)) continue;
        pools.delete(key);
        closing.push(pool.close());
      }
      await Promise.all(closing);
    },
    async close() {
      const all = [...pools.values()];
      pools.clear();
      await Promise.all(all.map((p) => p.close()));
    },
    async destroy() {
      const all = [...pools.values()];
      pools.clear();
      await Promise.all(all.map((p) => p.destroy()));
    },
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
