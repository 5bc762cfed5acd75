import { type BackoffOptions, backoffDelay } from "./backoff.js";
import { type CozeError, isFinalLimit } from "./errors.js";

/**
 * When to send an upstream call again. Only what is safe is retried (issue #5):
 * - a connection that failed before the request was sent (refused, DNS, connect timeout):
 *   any call, since Coze never saw it;
 * - 429 and 5xx answers, resets and timeouts on reads (run history, chat retrieve, message
 *   list): reading twice changes nothing.
 * A chat or workflow run that Coze may have accepted is never sent again, and a quota, balance
 * or plan refusal (coze-api.md §17.2) is never sent again at all: no wait cures it.
 */
export interface RetryPolicy {
  /** Attempts per call, the first included. Default 3; 1 turns retries off. */
  maxAttempts?: number;
  /** Backoff between attempts. Default 200 ms doubling to 2 s, 20 % jitter. */
  backoff?: BackoffOptions;
  /** A `Retry-After` longer than this is not waited for: the error goes to the caller. Default 10 000. */
  maxRetryAfterMs?: number;
}

/**
 * Caps retries across all calls of a client, so an outage cannot multiply upstream traffic: each
 * call deposits `ratio` of a retry, each retry withdraws one, starting from `reserve`
 * (the Finagle / gRPC retry-throttling idea).
 */
export interface RetryBudget {
  /** Records one original call. */
  deposit(): void;
  /** Takes one retry from the budget; false when it is spent. */
  withdraw(): boolean;
  /** Retries currently available (fractional). */
  readonly balance: number;
}

/** Options for {@link createRetryBudget}. */
export interface RetryBudgetOptions {
  /** Retries earned per call. Default 0.2 (at most one retry per five calls, in the long run). */
  ratio?: number;
  /** Retries available at start. Default 10. */
  reserve?: number;
  /** Most retries that can be saved up. Default 100. */
  max?: number;
}

/** Creates a {@link RetryBudget}. */
export function createRetryBudget(options: RetryBudgetOptions = {}): RetryBudget {
  const ratio = options.ratio ?? 0.2;
  const max = options.max ?? 100;
  let balance = Math.min(max, options.reserve ?? 10);
  return {
    deposit() {
      balance = Math.min(max, balance + ratio);
    },
    withdraw() {
      if (balance < 1) return false;
      balance -= 1;
      return true;
    },
    get balance() {
      return balance;
    },
  };
}

const notSentCodes = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/** True when the error proves the request never left this process (safe to send again). */
export function wasNotSent(err: CozeError): boolean {
  let e: unknown = err.cause;
  for (let depth = 0; e instanceof Error && depth < 5; depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (e.name === "ConnectTimeoutError" || (code !== undefined && notSentCodes.has(code)))
      return true;
    e = e.cause;
  }
  return false;
}

/** Whether `err` may be retried for a call that is (`read`) or is not (`write`) idempotent. */
export function isRetryable(err: CozeError, idempotent: boolean): boolean {
  if (err.step === "token") return false; // the token cache has its own backoff
  if (isFinalLimit(err)) return false;
  if (wasNotSent(err)) return true;
  if (!idempotent) return false;
  return err.code === "unavailable" || err.code === "rate_limited" || err.code === "timeout";
}

/**
 * The wait before retry number `retry` (0 for the first), or `undefined` when Coze asked for a
 * longer pause than the policy allows. `Retry-After` wins over the backoff when it is longer.
 */
export function retryDelay(
  retry: number,
  err: CozeError,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number | undefined {
  const backoff = backoffDelay(retry, { initialMs: 200, maxMs: 2_000, ...policy.backoff }, random);
  const after = err.retryAfterMs;
  if (after === undefined) return backoff;
  if (after > (policy.maxRetryAfterMs ?? 10_000)) return undefined;
  return Math.max(after, backoff);
}
