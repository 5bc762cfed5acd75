import { type BackoffOptions, backoffDelay } from "./backoff.js";
import type { Clock } from "./clock.js";
import type { CredentialSettings } from "./credential.js";
import {
  CozeError,
  type CozeErrorCode,
  fromTransportError,
  isCozeError,
  safeMessage,
} from "./errors.js";
import { signCozeJwt } from "./jwt.js";
import type { Pools } from "./pools.js";
import { requestAccessToken } from "./token-endpoint.js";

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

/**
 * What the cache reports for logs and metrics. Holds no token, JWT, key or upstream text: only
 * the source key, timings, codes and Coze's log id.
 *
 * - `fetched`: a token was fetched while none was valid; `refreshed`: a background refresh
 *   landed. Both carry `lifetimeMs`, the local lifetime of the new token.
 * - `failed`: a token request failed; `retryInMs` is the backoff before the next attempt.
 * - `invalidated`: `invalidate` dropped the cached token.
 * - `evicted`: a session's source was dropped to keep the session cache within its bound; the
 *   session fetches a new token when it is used again.
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
  | { type: "invalidated" | "evicted"; key: string; step: "token" };

/** What every source of one cache shares: settings, counters and the cache's life cycle. */
export interface SourceContext {
  pools: Pools;
  clock: Clock;
  /** The cache's default refresh margin, in ms. */
  marginMs: number;
  timeoutMs: number;
  backoff: BackoffOptions;
  userAgent: string;
  random: () => number;
  /** The cache's counters, updated in place. */
  stats: {
    jwtsSigned: number;
    tokenRequests: number;
    tokenFailures: number;
    tokensFetched: number;
    cacheHits: number;
    backgroundRefreshes: number;
  };
  emit(event: TokenEvent): void;
  /** Bumped by the cache's `clear()`: a source that sees a new one starts from scratch. */
  generation(): number;
  /** Aborted by the cache's `clear()`: cancels the token requests under way. */
  clearing(): AbortSignal;
}

/** A source and what the cache asks of it besides. */
export interface CachedSource {
  source: TokenSource;
  /** Whether it holds a token that has not expired. */
  holdsToken(): boolean;
}

// A Retry-After beyond this is not trusted: a proxy answering "come back tomorrow" must not lock
// every caller out of Coze for a day.
const maxRetryAfterMs = 5 * 60_000;

interface Cached {
  token: string;
  expiresAt: number;
  refreshAt: number;
}

/**
 * The token source of one credential and session: one token, one single-flight fetch and one
 * backoff of its own. None of the official SDKs has single-flight (coze-api.md §3), so this is
 * our own design.
 */
export function createTokenSource(s: CredentialSettings, ctx: SourceContext): CachedSource {
  const { clock, stats, emit } = ctx;
  let cached: Cached | undefined;
  // The token request under way, shared by every caller. An object of its own, so a request can
  // tell whether it is still the current one when it settles.
  let flight: { promise: Promise<string> } | undefined;
  let failures = 0;
  let lastError: CozeError | undefined;
  let retryAt = 0;
  let seenGeneration = ctx.generation();

  const reset = () => {
    if (seenGeneration === ctx.generation()) return;
    seenGeneration = ctx.generation();
    cached = undefined;
    flight = undefined;
    failures = 0;
    lastError = undefined;
    retryAt = 0;
  };

  const fetchToken = async (background: boolean, me: object): Promise<string> => {
    const myGeneration = ctx.generation();
    // After clear() (or once replaced) this request's outcome belongs to nobody's state. The
    // state and `flight` change together, before the caller or onEvent hears of the outcome, so
    // whoever reacts to it sees the new state.
    const owned = () => myGeneration === ctx.generation() && flight === me;
    const signal = ctx.clearing();
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
        dispatcher: ctx.pools.get(s.baseUrl),
        jwt,
        clientId: s.clientId,
        durationSeconds: s.durationSeconds,
        userAgent: ctx.userAgent,
        timeoutMs: ctx.timeoutMs,
        clock,
        signal,
      });
      // Coze's expires_in is an absolute Unix time in seconds (coze-api.md §2.3). Measure the
      // lifetime on the server's clock (its Date header) and lay it on ours from the request
      // start, so a skewed local clock neither keeps a dead token nor drops a live one.
      const serverNow = response.serverDateMs ?? start;
      const lifetimeMs = Math.min(response.expiresIn * 1000 - serverNow, s.durationSeconds * 1000);
      if (!(lifetimeMs > 0)) {
        throw new CozeError("protocol", safeMessage("protocol", "token"), {
          step: "token",
          logId: response.logId,
        });
      }
      stats.tokensFetched++;
      const expiresAt = start + lifetimeMs;
      // A token shorter-lived than twice the margin refreshes at half-life instead.
      const refreshAt = expiresAt - Math.min(s.refreshMarginMs ?? ctx.marginMs, lifetimeMs / 2);
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
      const delay = Math.max(backoffDelay(failures, ctx.backoff, ctx.random), retryAfter);
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

  const source: TokenSource = {
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
  return {
    source,
    holdsToken() {
      reset();
      return cached !== undefined && clock.now() < cached.expiresAt;
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
