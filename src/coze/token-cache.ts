import type { BackoffOptions } from "./backoff.js";
import { type Clock, systemClock } from "./clock.js";
import { type CozeCredential, type CredentialSettings, checkCredential } from "./credential.js";
import { CozeError, safeMessage } from "./errors.js";
import type { Pools } from "./pools.js";
import {
  createSessionTokens,
  type SessionStore,
  type SessionTokens,
  type SessionTokensOptions,
} from "./session-tokens.js";
import {
  type CachedSource,
  createTokenSource,
  type SourceContext,
  type TokenEvent,
  type TokenSource,
} from "./token-source.js";

export type { CozeCredential } from "./credential.js";
export type { SessionTokens, SessionTokensOptions } from "./session-tokens.js";
export type { TokenEvent, TokenSource } from "./token-source.js";

/** Counters since the cache was created; `clear()` does not reset them. */
export interface TokenCacheStats {
  /** JWTs signed (one per token request). */
  jwtsSigned: number;
  /** Token requests sent. */
  tokenRequests: number;
  /** Token requests that failed, for any reason. */
  tokenFailures: number;
  /** Token requests that brought a token (fetches and background refreshes). */
  tokensFetched: number;
  /** `getToken` calls answered from the cache, including those that started a refresh. */
  cacheHits: number;
  /** Background refreshes started (token still valid, refresh point passed). */
  backgroundRefreshes: number;
  /** Sources holding an unexpired token now (a gauge, counted when read). */
  tokensCached: number;
  /** Session sources dropped to keep a session cache within its bound. */
  tokensEvicted: number;
}

/** Options for {@link createTokenCache}. */
export interface TokenCacheOptions {
  /** Dispatchers per origin; token requests go through `pools.get(baseUrl)`. */
  pools: Pools;
  /** Time source for expiry, refresh, backoff and deadlines. Default `systemClock`. */
  clock?: Clock;
  /**
   * How long before expiry a token is refreshed in the background, in ms. Default 300 000
   * (5 min, as the old channel). Capped at half the token's lifetime.
   */
  refreshMarginMs?: number;
  /** Overall deadline of one token request, body included, in ms. Default 10 000. */
  requestTimeoutMs?: number;
  /**
   * Backoff after a failed token request. Default initial 1 000 ms, max 30 000 ms. A longer
   * `Retry-After` (429/503) wins, up to 5 minutes.
   */
  backoff?: BackoffOptions;
  /** The `user-agent` of token requests. Default `coze-gateway`. */
  userAgent?: string;
  /** Random source of the backoff jitter, in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Receives {@link TokenEvent}s. Exceptions it throws are swallowed. */
  onEvent?: (event: TokenEvent) => void;
}

/** Access tokens for any number of credentials, each cached and refreshed on its own. */
export interface TokenCache {
  /**
   * The token source of `credential`: the same object for the same key. Validates the credential.
   *
   * @throws TypeError naming the field (`credential.baseUrl`, `credential.privateKey`, ...) when
   *   it is invalid, or when the private key differs from the one already used for this key.
   */
  source(credential: CozeCredential): TokenSource;
  /**
   * A bounded cache of per-session sources of `credential` (its own `sessionName` is ignored:
   * each session names its own), each kept with the value `options.attach` makes for it. Each
   * call makes a cache of its own; `clear()` empties it too.
   *
   * @throws TypeError as {@link TokenCache.source} does, or when `maxSessions` is not a positive
   *   integer.
   */
  sessions<T>(credential: CozeCredential, options: SessionTokensOptions<T>): SessionTokens<T>;
  /** Counters since creation. */
  stats(): TokenCacheStats;
  /**
   * Forgets every token, backoff and source, and aborts token requests under way: their callers
   * fail with `canceled`. Sources handed out before keep working and start from scratch.
   */
  clear(): void;
}

/**
 * Creates a token cache. Each credential gets its own token (the old gateway shared one token
 * across every channel; never again), its own single-flight fetch and its own backoff.
 *
 * @throws TypeError when `refreshMarginMs` is negative or `requestTimeoutMs` is not positive.
 */
export function createTokenCache(options: TokenCacheOptions): TokenCache {
  const marginMs = options.refreshMarginMs ?? 300_000;
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  if (!(marginMs >= 0) || !(timeoutMs > 0)) {
    throw new TypeError("refreshMarginMs must be ≥ 0 and requestTimeoutMs > 0");
  }
  const stats: SourceContext["stats"] = {
    jwtsSigned: 0,
    tokenRequests: 0,
    tokenFailures: 0,
    tokensFetched: 0,
    cacheHits: 0,
    backgroundRefreshes: 0,
  };
  let evicted = 0;
  let generation = 0;
  let clearing = new AbortController();
  const emit = (event: TokenEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // A broken logger must not break authentication.
    }
  };
  const ctx: SourceContext = {
    pools: options.pools,
    clock: options.clock ?? systemClock,
    marginMs,
    timeoutMs,
    backoff: { initialMs: 1_000, maxMs: 30_000, ...options.backoff },
    userAgent: options.userAgent ?? "coze-gateway",
    random: options.random ?? Math.random,
    stats,
    emit,
    generation: () => generation,
    clearing: () => clearing.signal,
  };
  const sources = new Map<string, { settings: CredentialSettings; cached: CachedSource }>();
  const sessionStores: SessionStore[] = [];

  return {
    source(credential) {
      const settings = checkCredential(credential);
      const existing = sources.get(settings.key);
      if (existing !== undefined) {
        // Config hands over one key object per channel: the same object needs no comparison.
        const inUse = existing.settings.privateKey;
        if (inUse !== settings.privateKey && !inUse.equals(settings.privateKey)) {
          throw new TypeError(
            "credential.privateKey: differs from the key already in use for this client id and key id",
          );
        }
        return existing.cached.source;
      }
      const cached = createTokenSource(settings, ctx);
      sources.set(settings.key, { settings, cached });
      return cached.source;
    },
    sessions(credential, sessionOptions) {
      const { sessions, store } = createSessionTokens(
        checkCredential(credential),
        ctx,
        sessionOptions,
        (dropped) => {
          evicted++;
          emit({ type: "evicted", key: dropped.key, step: "token" });
        },
        () => {
          const at = sessionStores.indexOf(store);
          if (at >= 0) sessionStores.splice(at, 1);
        },
      );
      sessionStores.push(store);
      return sessions;
    },
    stats() {
      let tokensCached = 0;
      for (const { cached } of sources.values()) if (cached.holdsToken()) tokensCached++;
      for (const store of sessionStores) tokensCached += store.tokensHeld();
      return { ...stats, tokensCached, tokensEvicted: evicted };
    },
    clear() {
      generation++;
      sources.clear();
      for (const store of sessionStores) store.clear();
      clearing.abort(
        new CozeError("canceled", safeMessage("canceled", "token"), { step: "token" }),
      );
      clearing = new AbortController();
    },
  };
}
