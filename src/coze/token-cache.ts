import { KeyObject } from "node:crypto";
import { type BackoffOptions, backoffDelay } from "./backoff.js";
import { type Clock, systemClock } from "./clock.js";
import {
  CozeError,
  type CozeErrorCode,
  fromTransportError,
  isCozeError,
  safeMessage,
} from "./errors.js";
import { signCozeJwt } from "./jwt.js";
import type { Pools } from "./pools.js";
import { requestAccessToken, tokenPath } from "./token-endpoint.js";

/** One Coze OAuth service app credential, with the options of the tokens it buys. */
export interface CozeCredential {
  /** API base URL, e.g. `https://api.coze.cn`; the token endpoint lives on it (coze-api.md §1.1). */
  baseUrl: string;
  /** The OAuth app id (JWT `iss`, body `client_id`). */
  clientId: string;
  /** The public key fingerprint (JWT `kid`). */
  publicKeyId: string;
  /**
   * The RSA private key, parsed once by whoever read it (config's `parsePrivateKey`); the cache
   * never parses PEM. A secret.
   */
  privateKey: KeyObject;
  /** End-user id for conversation isolation (JWT `session_name`); each gets its own token. */
  sessionName?: string;
  /** Uses `POST /api/permission/oauth2/account/{accountId}/token` (coze-api.md §2.2). */
  accountId?: string;
  /** Uses `POST /api/permission/oauth2/enterprise_id/{enterpriseId}/token` (coze-api.md §2.2). */
  enterpriseId?: string;
  /** Requested token lifetime in seconds (`duration_seconds`), 1 to 86399. Default 3600. */
  durationSeconds?: number;
  /**
   * JWT `aud`. Default the base URL's host, port included when not the default one, like the go
   * and py SDKs (coze-api.md §2.1).
   */
  audience?: string;
  /**
   * How long before expiry a token is refreshed in the background, in ms. Overrides the cache's
   * `refreshMarginMs` for this credential.
   */
  refreshMarginMs?: number;
}

/** Access tokens of one credential. */
export interface TokenSource {
  /**
   * The cache key: base URL, client id, key id, session name, and the account, enterprise,
   * duration and audience that also shape the token. Holds no secret; safe to log.
   */
  readonly key: string;
  /**
   * A valid access token: the cached one, or one fetched by a single request shared by every
   * concurrent caller. Between the refresh point and expiry it returns the cached token at once
   * and refreshes in the background.
   *
   * @throws CozeError (step `token`) from the token request, shared by all callers of that
   *   request; the same error at once, without a request, while the source backs off after a
   *   failure; `canceled` (or `timeout`, by the signal's reason) when `signal` aborts: this
   *   caller only, the shared request goes on and fills the cache.
   */
  getToken(signal?: AbortSignal): Promise<string>;
  /**
   * The cached token when it is still valid, at once, counted as a cache hit (and starting the
   * background refresh past the refresh point, as {@link TokenSource.getToken} does); `undefined`
   * when only `getToken` can answer. Lets a caller skip a promise on the request path (issue #6).
   */
  cachedToken(): string | undefined;
  /**
   * Drops `token` if, and only if, it is still the cached one, so the next `getToken` fetches a
   * new one. Call it when Coze rejected the token (4100/4101, HTTP 401). A token that was already
   * replaced is ignored.
   */
  invalidate(token: string): void;
}

/** Counters since the cache was created; `clear()` does not reset them. */
export interface TokenCacheStats {
  /** JWTs signed (one per token request). */
  jwtsSigned: number;
  /** Token requests sent. */
  tokenRequests: number;
  /** Token requests that failed, for any reason. */
  tokenFailures: number;
  /** `getToken` calls answered from the cache, including those that started a refresh. */
  cacheHits: number;
  /** Background refreshes started (token still valid, refresh point passed). */
  backgroundRefreshes: number;
}

/**
 * What the cache reports for logs and metrics. Holds no token, JWT, key or upstream text: only
 * the source key, timings, codes and Coze's log id.
 *
 * - `fetched`: a token was fetched while none was valid; `refreshed`: a background refresh
 *   landed. Both carry `lifetimeMs`, the local lifetime of the new token.
 * - `failed`: a token request failed; `retryInMs` is the backoff before the next attempt.
 * - `invalidated`: `invalidate` dropped the cached token.
 */
export type TokenEvent =
  | {
      type: "fetched" | "refreshed";
      key: string;
      step: "token";
      durationMs: number;
      lifetimeMs: number;
      logId?: string;
    }
  | {
      type: "failed";
      key: string;
      step: "token";
      durationMs: number;
      background: boolean;
      code: CozeErrorCode;
      status?: number;
      cozeCode?: number | string;
      logId?: string;
      retryInMs: number;
    }
  | { type: "invalidated"; key: string; step: "token" };

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
  /** Counters since creation. */
  stats(): TokenCacheStats;
  /**
   * Forgets every token, backoff and source, and aborts token requests under way: their callers
   * fail with `canceled`. Sources handed out before keep working and start from scratch.
   */
  clear(): void;
}

// A Retry-After beyond this is not trusted: a proxy answering "come back tomorrow" must not lock
// every caller out of Coze for a day.
const maxRetryAfterMs = 5 * 60_000;

interface Settings {
  key: string;
  baseUrl: string;
  url: string;
  clientId: string;
  publicKeyId: string;
  privateKey: KeyObject;
  sessionName: string | undefined;
  durationSeconds: number;
  audience: string;
  refreshMarginMs: number | undefined;
}

interface Cached {
  token: string;
  expiresAt: number;
  refreshAt: number;
}

/**
 * Creates a token cache. Each credential gets its own token (the old gateway shared one token
 * across every channel; never again), its own single-flight fetch and its own backoff. None of
 * the official SDKs has single-flight (coze-api.md §3), so this is our own design.
 *
 * @throws TypeError when `refreshMarginMs` is negative or `requestTimeoutMs` is not positive.
 */
export function createTokenCache(options: TokenCacheOptions): TokenCache {
  const clock = options.clock ?? systemClock;
  const margin = options.refreshMarginMs ?? 300_000;
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  if (!(margin >= 0) || !(timeoutMs > 0)) {
    throw new TypeError("refreshMarginMs must be ≥ 0 and requestTimeoutMs > 0");
  }
  const backoff: BackoffOptions = { initialMs: 1_000, maxMs: 30_000, ...options.backoff };
  const userAgent = options.userAgent ?? "coze-gateway";
  const random = options.random ?? Math.random;
  const stats: TokenCacheStats = {
    jwtsSigned: 0,
    tokenRequests: 0,
    tokenFailures: 0,
    cacheHits: 0,
    backgroundRefreshes: 0,
  };
  const sources = new Map<string, { settings: Settings; source: TokenSource }>();
  let generation = 0;
  // Aborted by clear(): cancels the token requests under way.
  let clearing = new AbortController();

  const emit = (event: TokenEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // A broken logger must not break authentication.
    }
  };

  function createSource(s: Settings): TokenSource {
    let cached: Cached | undefined;
    // The token request under way, shared by every caller. An object of its own, so a request
    // can tell whether it is still the current one when it settles.
    let flight: { promise: Promise<string> } | undefined;
    let failures = 0;
    let lastError: CozeError | undefined;
    let retryAt = 0;
    let seenGeneration = generation;

    const reset = () => {
      if (seenGeneration === generation) return;
      seenGeneration = generation;
      cached = undefined;
      flight = undefined;
      failures = 0;
      lastError = undefined;
      retryAt = 0;
    };

    const fetchToken = async (background: boolean, me: object): Promise<string> => {
      const myGeneration = generation;
      // After clear() (or once replaced) this request's outcome belongs to nobody's state. The
      // state and `flight` change together, before the caller or onEvent hears of the outcome,
      // so whoever reacts to it sees the new state.
      const owned = () => myGeneration === generation && flight === me;
      const signal = clearing.signal;
      const start = clock.now();
      let sent = false;
      try {
        let jwt: string;
        try {
          jwt = await signCozeJwt(
            s.privateKey,
            {
              clientId: s.clientId,
              publicKeyId: s.publicKeyId,
              audience: s.audience,
              ...(s.sessionName === undefined ? {} : { sessionName: s.sessionName }),
            },
            clock,
          );
        } catch (err) {
          throw new CozeError("failed", safeMessage("failed", "token"), {
            step: "token",
            cause: err,
          });
        }
        stats.jwtsSigned++;
        stats.tokenRequests++;
        sent = true;
        const response = await requestAccessToken({
          url: s.url,
          dispatcher: options.pools.get(s.baseUrl),
          jwt,
          clientId: s.clientId,
          durationSeconds: s.durationSeconds,
          userAgent,
          timeoutMs,
          clock,
          signal,
        });
        // Coze's expires_in is an absolute Unix time in seconds (coze-api.md §2.3). Measure the
        // lifetime on the server's clock (its Date header) and lay it on ours from the request
        // start, so a skewed local clock neither keeps a dead token nor drops a live one.
        const serverNow = response.serverDateMs ?? start;
        const lifetimeMs = Math.min(
          response.expiresIn * 1000 - serverNow,
          s.durationSeconds * 1000,
        );
        if (!(lifetimeMs > 0)) {
          throw new CozeError("protocol", safeMessage("protocol", "token"), {
            step: "token",
            logId: response.logId,
          });
        }
        const expiresAt = start + lifetimeMs;
        // A token shorter-lived than twice the margin refreshes at half-life instead.
        const refreshAt = expiresAt - Math.min(s.refreshMarginMs ?? margin, lifetimeMs / 2);
        if (owned()) {
          cached = { token: response.accessToken, expiresAt, refreshAt };
          failures = 0;
          lastError = undefined;
          retryAt = 0;
          flight = undefined;
        }
        emit({
          type: background ? "refreshed" : "fetched",
          key: s.key,
          step: "token",
          durationMs: clock.now() - start,
          lifetimeMs,
          ...(response.logId === undefined ? {} : { logId: response.logId }),
        });
        return response.accessToken;
      } catch (err) {
        const error = isCozeError(err) ? err : fromTransportError("token", err, signal);
        if (sent) stats.tokenFailures++;
        if (!owned()) throw error;
        const retryAfter = Math.min(error.retryAfterMs ?? 0, maxRetryAfterMs);
        const delay = Math.max(backoffDelay(failures, backoff, random), retryAfter);
        failures++;
        lastError = error;
        retryAt = clock.now() + delay;
        flight = undefined;
        emit({
          type: "failed",
          key: s.key,
          step: "token",
          durationMs: clock.now() - start,
          background,
          code: error.code,
          ...(error.status === undefined ? {} : { status: error.status }),
          ...(error.cozeCode === undefined ? {} : { cozeCode: error.cozeCode }),
          ...(error.logId === undefined ? {} : { logId: error.logId }),
          retryInMs: delay,
        });
        throw error;
      }
    };

    const startFlight = (background: boolean): Promise<string> => {
      const me = {} as { promise: Promise<string> };
      flight = me;
      me.promise = fetchToken(background, me);
      // Callers may all have gone (aborted, or a background refresh has none): the outcome is
      // recorded in the cache state, so an unobserved rejection is expected.
      me.promise.catch(() => {});
      return me.promise;
    };

    function cachedToken(): string | undefined {
      reset();
      if (cached === undefined) return undefined;
      const now = clock.now();
      if (now >= cached.expiresAt) return undefined;
      if (now >= cached.refreshAt && flight === undefined && now >= retryAt) {
        stats.backgroundRefreshes++;
        startFlight(true);
      }
      stats.cacheHits++;
      return cached.token;
    }

    return {
      key: s.key,
      cachedToken,
      getToken(signal) {
        if (signal?.aborted) {
          reset();
          return Promise.reject(fromTransportError("token", signal.reason, signal));
        }
        const token = cachedToken();
        if (token !== undefined) return Promise.resolve(token);
        const now = clock.now();
        cached = undefined;
        let shared = flight?.promise;
        if (shared === undefined) {
          // Backing off: fail fast with the last error instead of hammering the endpoint.
          if (lastError !== undefined && now < retryAt) return Promise.reject(lastError);
          shared = startFlight(false);
        }
        return join(shared, signal);
      },
      invalidate(token) {
        reset();
        if (cached?.token !== token) return;
        cached = undefined;
        emit({ type: "invalidated", key: s.key, step: "token" });
      },
    };
  }

  return {
    source(credential) {
      const settings = validate(credential);
      const existing = sources.get(settings.key);
      if (existing !== undefined) {
        // Config hands over one key object per channel: the same object needs no comparison.
        const inUse = existing.settings.privateKey;
        if (inUse !== settings.privateKey && !inUse.equals(settings.privateKey)) {
          throw new TypeError(
            "credential.privateKey: differs from the key already in use for this client id and key id",
          );
        }
        return existing.source;
      }
      const source = createSource(settings);
      sources.set(settings.key, { settings, source });
      return source;
    },
    stats: () => ({ ...stats }),
    clear() {
      generation++;
      sources.clear();
      clearing.abort(
        new CozeError("canceled", safeMessage("canceled", "token"), { step: "token" }),
      );
      clearing = new AbortController();
    },
  };
}

// Rejects with the caller's abort at once, leaving the shared promise to the others.
function join(shared: Promise<string>, signal: AbortSignal | undefined): Promise<string> {
  if (signal === undefined) return shared;
  return new Promise<string>((resolve, reject) => {
    const onAbort = () => reject(fromTransportError("token", signal.reason, signal));
    signal.addEventListener("abort", onAbort, { once: true });
    shared.then(
      (token) => {
        signal.removeEventListener("abort", onAbort);
        resolve(token);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

// Checks every field; the key only for being an RSA private key object, which signing needs.
function validate(c: CozeCredential): Settings {
  if (typeof c !== "object" || c === null) throw new TypeError("credential must be an object");
  let base: URL;
  try {
    base = new URL(c.baseUrl);
  } catch {
    throw new TypeError("credential.baseUrl: must be an absolute http(s) URL");
  }
  if ((base.protocol !== "http:" && base.protocol !== "https:") || base.search || base.hash) {
    throw new TypeError("credential.baseUrl: must be an http(s) URL without query or fragment");
  }
  const baseUrl = `${base.origin}${base.pathname.replace(/\/+$/, "")}`;
  for (const field of ["clientId", "publicKeyId"] as const) {
    requireString(c[field], field);
  }
  for (const field of ["sessionName", "accountId", "enterpriseId", "audience"] as const) {
    if (c[field] !== undefined) requireString(c[field], field);
  }
  const durationSeconds = c.durationSeconds ?? 3600;
  // 86399 is the documented maximum (coze-api.md §2.2).
  if (!Number.isSafeInteger(durationSeconds) || durationSeconds < 1 || durationSeconds > 86399) {
    throw new TypeError("credential.durationSeconds: must be an integer from 1 to 86399");
  }
  if (c.refreshMarginMs !== undefined && !(c.refreshMarginMs >= 0)) {
    throw new TypeError("credential.refreshMarginMs: must be a number of ms, 0 or more");
  }
  let path: string;
  try {
    path = tokenPath(c.accountId, c.enterpriseId);
  } catch {
    throw new TypeError("credential.accountId: cannot be combined with credential.enterpriseId");
  }
  const privateKey: unknown = c.privateKey;
  if (
    !(privateKey instanceof KeyObject) ||
    privateKey.type !== "private" ||
    privateKey.asymmetricKeyType !== "rsa"
  ) {
    throw new TypeError("credential.privateKey: must be an RSA private KeyObject");
  }
  // go and py send the host with its port (coze-api.md §2.1, §9); URL.host drops default ports.
  const audience = c.audience ?? base.host;
  const key = JSON.stringify([
    baseUrl,
    c.clientId,
    c.publicKeyId,
    c.sessionName ?? null,
    c.accountId ?? null,
    c.enterpriseId ?? null,
    durationSeconds,
    audience,
  ]);
  return {
    key,
    baseUrl,
    url: `${baseUrl}${path}`,
    clientId: c.clientId,
    publicKeyId: c.publicKeyId,
    privateKey,
    sessionName: c.sessionName,
    durationSeconds,
    audience,
    refreshMarginMs: c.refreshMarginMs,
  };
}

function requireString(value: unknown, field: string): void {
  if (typeof value !== "string" || value.trim() === "") {
    throw new TypeError(`credential.${field}: must be a non-empty string`);
  }
}
