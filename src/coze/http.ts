import type { Dispatcher, FormData } from "undici";
import { type BinaryResponse, readBinary } from "./binary-body.js";
import { type Clock, systemClock } from "./clock.js";
import { createDeadline } from "./deadline.js";
import { headerValue, type JsonResponse, readEnvelope } from "./envelope.js";
import { CozeError, type CozeErrorCode, fromTransportError } from "./errors.js";
import { openStream, type StreamResponse } from "./event-stream.js";
import type { Pools } from "./pools.js";
import { createRequestOptions } from "./request-options.js";
import {
  createRetryBudget,
  isRetryable,
  type RetryBudget,
  type RetryPolicy,
  retryDelay,
} from "./retry.js";

/** Where the HTTP layer gets access tokens. `TokenSource` from `token-cache.ts` fits. */
export interface AccessTokens {
  /** A valid access token for this credential. */
  getToken(signal?: AbortSignal): Promise<string>;
  /** The cached token when valid, without a promise; `undefined` sends the call to `getToken`. */
  cachedToken?(): string | undefined;
  /** Drops `token` if it is still the cached one, so the next `getToken` fetches another. */
  invalidate(token: string): void;
  /**
   * Set for a credential that cannot be renewed (a personal access token, coze-api.md §11.2):
   * when Coze rejects its token, the call is not sent again with another one but fails at once
   * with the error this returns for Coze's rejection.
   */
  refused?(error: CozeError): CozeError;
}

/** What the HTTP layer reports after each upstream call (for metrics and logs; no secrets). */
export interface CallInfo {
  step: string;
  /** HTTP status of the last attempt, when a response arrived. */
  status: number | undefined;
  /** From the start of the call to the end of the body (unary) or to the headers (stream). */
  durationMs: number;
  outcome: "ok" | CozeErrorCode;
  logId: string | undefined;
  /** True when the call was sent a second time after Coze rejected the token. */
  retriedAuth: boolean;
  /** How many times the call was retried after a transient failure. */
  retries: number;
}

/**
 * Where the Coze log ids (`X-Tt-Logid`) of the calls made for one gateway request are collected,
 * for that request's log line. Passed along with the call, like its signal.
 */
export interface CallTrace {
  readonly cozeLogIds: string[];
  /**
   * The request's distributed trace (W3C Trace Context), when it has one: every call made for
   * the request carries a `traceparent` of that trace, and is a span of it when tracing is on.
   */
  readonly tracer?: CallTracer | undefined;
}

/** Where the Coze calls of one traced request join its trace (set by the composition root). */
export interface CallTracer {
  /** Starts one Coze call (`step`, e.g. `chat.create`): what it sends, and its span. */
  call(step: string, method: string): CallSpan;
}

/** One Coze call of a traced request. Nothing in it may hold a secret. */
export interface CallSpan {
  /** The `traceparent` header sent with every attempt of the call. */
  readonly traceparent: string;
  /** The `tracestate` header sent with it, if any. */
  readonly tracestate: string | undefined;
  /** Starts the wait for an access token the cache did not hold; returns its end. */
  token?(): (failed: boolean) => void;
  /** Ends the call's span with what the call reports (see {@link CallInfo}). */
  end?(info: CallInfo): void;
}

/** The most log ids one trace keeps (a request polling for long makes many calls). */
const maxTracedLogIds = 16;

/** Adds `logId` to `trace`, once, while it has room. */
export function noteLogId(trace: CallTrace | undefined, logId: string | undefined): void {
  if (
    trace !== undefined &&
    logId &&
    trace.cozeLogIds.length < maxTracedLogIds &&
    !trace.cozeLogIds.includes(logId)
  ) {
    trace.cozeLogIds.push(logId);
  }
}

/** Options for {@link createCozeHttp}. */
export interface CozeHttpOptions {
  /** Coze API base URL, e.g. `https://api.coze.cn`. */
  baseUrl: string;
  tokens: AccessTokens;
  pools: Pools;
  clock?: Clock;
  /** `User-Agent` sent upstream. */
  userAgent?: string;
  /** Overall deadline of a unary call, headers and body, in ms. Default 60 000. */
  requestTimeoutMs?: number;
  /** Most time to establish a connection, in ms. Default: the pools' (5 000). */
  connectTimeoutMs?: number;
  /** Most time to wait for response headers, in ms. Default 30 000. */
  headersTimeoutMs?: number;
  /** Longest silence on an open event stream before it fails with `timeout`, in ms. Default 60 000. */
  streamIdleTimeoutMs?: number;
  /** Largest JSON body accepted, in bytes. Default 64 MiB. */
  maxBodyBytes?: number;
  /** When to send a call again (only where safe; see {@link RetryPolicy}). */
  retry?: RetryPolicy;
  /** Shared cap on retries; default a budget of this client's own. */
  retryBudget?: RetryBudget;
  /** Jitter source for retry backoff; tests pass a fixed one. */
  random?: () => number;
  onCall?: (info: CallInfo) => void;
}

/** One upstream request. */
export interface CozeRequest {
  /** Names the step in errors and metrics, e.g. `chat.create`. */
  step: string;
  method: "GET" | "POST";
  /** Path below the base URL, starting with `/`. */
  path: string;
  /** Query parameters; `undefined` values are left out. */
  query?: Record<string, string | number | boolean | undefined>;
  /** A JSON body. */
  body?: unknown;
  /** A multipart body (file upload). Sent once: a multipart call is not retried. */
  form?: FormData;
  signal?: AbortSignal;
  /** Collects this call's Coze log id for the gateway request it serves. */
  trace?: CallTrace;
  /** Overrides the unary deadline for this call, in ms. */
  timeoutMs?: number;
  /** The `Accept` header, when the answer is not JSON (speech audio). */
  accept?: string;
  /**
   * For a stream: it counts as open at its response headers rather than at its first event
   * (see `openStream`), for a run whose caller must learn at once that it started.
   */
  openAtHeaders?: boolean;
  /**
   * Whether sending the call twice is harmless. Default: true for GET. Idempotent calls are
   * retried on 429, 5xx, resets and timeouts; others only when the request was never sent.
   */
  idempotent?: boolean;
}

/** The Coze HTTP layer: auth, envelopes, errors and streams for one base URL. */
export interface CozeHttp {
  readonly baseUrl: string;
  /** Sends a request and decodes the JSON envelope; throws {@link CozeError} on any failure. */
  json(req: CozeRequest): Promise<JsonResponse>;
  /**
   * Sends a request that answers with an event stream. An error answered before the stream
   * (a JSON envelope, or a bare JSON envelope as the stream's first line) throws; the stream's
   * own events are the caller's to interpret.
   */
  stream(req: CozeRequest): Promise<StreamResponse>;
  /**
   * Sends a request that answers with a file on success (speech audio) and a JSON envelope on
   * failure, read by `readBinary`; throws {@link CozeError} on any failure.
   */
  binary(req: CozeRequest): Promise<BinaryResponse>;
}

/**
 * Creates the HTTP layer for one Coze base URL. Every call carries a bearer token from
 * `tokens`; when Coze rejects the token (code 4100, 4101 or 700012006, or HTTP 401) the layer
 * invalidates exactly that token and sends the call once more with a fresh one (coze-api.md §3,
 * chat-sdk behaviour), unless the token cannot be renewed (`tokens.refused`, a personal access
 * token): then the call fails at once. Transient failures are retried only where sending twice is harmless
 * (see {@link CozeRequest.idempotent}): a chat or workflow run that Coze may have accepted is
 * never sent twice.
 */
export function createCozeHttp(options: CozeHttpOptions): CozeHttp {
  const clock = options.clock ?? systemClock;
  const base = new URL(options.baseUrl);
  const dispatcher: Dispatcher = options.pools.get(base, { connectMs: options.connectTimeoutMs });
  const requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
  const maxBodyBytes = options.maxBodyBytes ?? 64 * 1024 * 1024;
  const requestOptions = createRequestOptions({
    base,
    userAgent: options.userAgent,
    headersTimeoutMs: options.headersTimeoutMs ?? 30_000,
    streamIdleTimeoutMs: options.streamIdleTimeoutMs ?? 60_000,
    requestTimeoutMs,
  });
  const retryPolicy = options.retry ?? {};
  const maxAttempts = Math.max(1, retryPolicy.maxAttempts ?? 3);
  const budget = options.retryBudget ?? createRetryBudget();
  const random = options.random ?? Math.random;

  function report(
    req: CozeRequest,
    span: CallSpan | undefined,
    started: number,
    status: number | undefined,
    err: unknown,
    logId: string | undefined,
    retriedAuth: boolean,
    retries: number,
  ) {
    const callLogId = err instanceof CozeError ? (err.logId ?? logId) : logId;
    noteLogId(req.trace, callLogId);
    const { onCall } = options;
    if (onCall === undefined && span?.end === undefined) return;
    const info: CallInfo = {
      step: req.step,
      status,
      durationMs: clock.now() - started,
      outcome: err === undefined ? "ok" : err instanceof CozeError ? err.code : "unavailable",
      logId: callLogId,
      retriedAuth,
      retries,
    };
    onCall?.(info);
    span?.end?.(info);
  }

  /** What one call did, for its report. */
  interface Outcome {
    status: number | undefined;
    logId: string | undefined;
    retries: number;
  }

  /**
   * Sends `req` and hands the response to `handle`, whose result is the call's. Each attempt
   * carries a token (the cached one at once when it is valid); when Coze rejects that token the
   * attempt invalidates exactly it and is sent once more with a fresh one. A failed attempt is
   * sent again while the failure is retryable for this call, the budget allows and attempts
   * remain, after the backoff (or `Retry-After`). Reports the call when it ends. One async
   * function for the whole exchange: each layer of awaits cost every request (issue #6).
   */
  async function exchange<T extends { logId: string | undefined }>(
    req: CozeRequest,
    signal: AbortSignal,
    stream: boolean,
    handle: (res: Dispatcher.ResponseData, out: Outcome) => Promise<T>,
  ): Promise<T> {
    const started = clock.now();
    const span = req.trace?.tracer?.call(req.step, req.method);
    const out: Outcome = { status: undefined, logId: undefined, retries: 0 };
    budget.deposit();
    const idempotent = req.idempotent ?? req.method === "GET";
    // Whether the current attempt already replaced a rejected token.
    let retriedAuth = false;
    for (let n = 0; ; ) {
      let token: string | undefined;
      let value: T;
      try {
        token = options.tokens.cachedToken?.();
        if (token === undefined) {
          const tokenDone = span?.token?.();
          try {
            token = await options.tokens.getToken(signal);
            tokenDone?.(false);
          } catch (err) {
            tokenDone?.(true);
            throw fromTransportError(req.step, err, signal);
          }
        }
        const res = await dispatcher.request(requestOptions(req, token, signal, stream, span));
        out.status = res.statusCode;
        value = await handle(res, out);
      } catch (err) {
        const error = fromTransportError(req.step, err, signal);
        if (token !== undefined && options.tokens.refused && isTokenRejection(error)) {
          const refusal = options.tokens.refused(error);
          report(req, span, started, out.status, refusal, out.logId, false, out.retries);
          throw refusal;
        }
        if (
          token !== undefined &&
          !retriedAuth &&
          req.form === undefined &&
          isTokenRejection(error)
        ) {
          options.tokens.invalidate(token);
          retriedAuth = true;
          continue;
        }
        const delay =
          signal.aborted || req.form !== undefined || n + 1 >= maxAttempts
            ? undefined
            : isRetryable(error, idempotent)
              ? retryDelay(n, error, retryPolicy, random)
              : undefined;
        if (delay === undefined || !budget.withdraw()) {
          report(req, span, started, out.status, error, out.logId, false, out.retries);
          throw error;
        }
        out.retries++;
        try {
          await clock.sleep(delay, signal);
        } catch {
          report(req, span, started, out.status, error, out.logId, false, out.retries);
          throw error;
        }
        n++;
        retriedAuth = false;
        continue;
      }
      // Outside the try: a failing report is not a failed call to send again.
      report(req, span, started, out.status, undefined, value.logId, retriedAuth, out.retries);
      return value;
    }
  }

  return {
    baseUrl: options.baseUrl,

    async json(req) {
      const deadline = createDeadline(clock, req.timeoutMs ?? requestTimeoutMs, req.signal);
      try {
        return await exchange(req, deadline.signal, false, (res, out) => {
          out.logId = headerValue(res.headers, "x-tt-logid");
          return readEnvelope(req.step, res, maxBodyBytes, deadline.signal, clock);
        });
      } finally {
        deadline.dispose();
      }
    },

    async binary(req) {
      const deadline = createDeadline(clock, req.timeoutMs ?? requestTimeoutMs, req.signal);
      try {
        return await exchange(req, deadline.signal, false, (res, out) => {
          out.logId = headerValue(res.headers, "x-tt-logid");
          return readBinary(req.step, res, maxBodyBytes, deadline.signal, clock);
        });
      } finally {
        deadline.dispose();
      }
    },

    stream(req) {
      // The headers phase is bounded by headersTimeoutMs inside undici; the open stream by the
      // idle timeout. The caller's signal cancels either. Stream calls start runs: only a request
      // that never left is sent again.
      const signal = req.signal ?? new AbortController().signal;
      return exchange(req, signal, true, (res) =>
        openStream(req.step, res, signal, maxBodyBytes, clock, req.openAtHeaders),
      );
    },
  };
}

function isTokenRejection(err: unknown): boolean {
  return (
    err instanceof CozeError &&
    (err.code === "authentication" || err.cozeCode === 4101) &&
    err.step !== "token"
  );
}
