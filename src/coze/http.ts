import type { Dispatcher, FormData } from "undici";
import { type Clock, systemClock } from "./clock.js";
import { createDeadline } from "./deadline.js";
import { envelopeError, headerValue, type JsonResponse, readEnvelope } from "./envelope.js";
import { CozeError, type CozeErrorCode, fromTransportError, safeMessage } from "./errors.js";
import type { Pools } from "./pools.js";
import {
  createRetryBudget,
  isRetryable,
  type RetryBudget,
  type RetryPolicy,
  retryDelay,
} from "./retry.js";
import { createSseDecoder, type SseEvent } from "./sse.js";
import { tryParseObject } from "./wire.js";

/** Where the HTTP layer gets access tokens. `TokenSource` from `token-cache.ts` fits. */
export interface AccessTokens {
  /** A valid access token for this credential. */
  getToken(signal?: AbortSignal): Promise<string>;
  /** The cached token when valid, without a promise; `undefined` sends the call to `getToken`. */
  cachedToken?(): string | undefined;
  /** Drops `token` if it is still the cached one, so the next `getToken` fetches another. */
  invalidate(token: string): void;
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
  /**
   * Whether sending the call twice is harmless. Default: true for GET. Idempotent calls are
   * retried on 429, 5xx, resets and timeouts; others only when the request was never sent.
   */
  idempotent?: boolean;
}

/**
 * An open event stream. Iterate it once; breaking out of the loop, or `close()`, releases the
 * connection (which also tells Coze the client went away).
 */
export interface StreamResponse extends AsyncIterable<SseEvent> {
  readonly status: number;
  readonly logId: string | undefined;
  /**
   * The same events grouped by the body chunk that carried them, for readers that take a whole
   * chunk's events with one await (issue #6). Read a stream once, one way or the other. Streams
   * from {@link createCozeHttp} have it.
   */
  batches?(): AsyncIterable<readonly SseEvent[]>;
  /**
   * Reads the whole stream, handing each chunk's events to `onBatch` as they arrive; `onBatch`
   * returns `true` to stop early. Resolves at the end of the body, after the connection was
   * released; rejects like iteration does. The allocation-light way to read a stream to its end
   * (one async function, no generator per event; issue #6). Read a stream once, one way only.
   */
  consume?(onBatch: (events: readonly SseEvent[]) => boolean | undefined): Promise<void>;
  close(): void;
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
}

const mib = 1024 * 1024;
/** A path the URL parser would leave as it is. */
const plainPath = /^(?:\/[A-Za-z0-9_-]+)+$/;

/**
 * Creates the HTTP layer for one Coze base URL. Every call carries a bearer token from
 * `tokens`; when Coze rejects the token (code 4100, 4101 or 700012006, or HTTP 401) the layer
 * invalidates exactly that token and sends the call once more with a fresh one (coze-api.md §3,
 * chat-sdk behaviour). Nothing else is retried here: a chat or workflow run that Coze may have
 * accepted is never sent twice.
 */
export function createCozeHttp(options: CozeHttpOptions): CozeHttp {
  const clock = options.clock ?? systemClock;
  const base = new URL(options.baseUrl);
  const dispatcher: Dispatcher = options.pools.get(base, { connectMs: options.connectTimeoutMs });
  const requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
  const headersTimeoutMs = options.headersTimeoutMs ?? 30_000;
  const idleTimeoutMs = options.streamIdleTimeoutMs ?? 60_000;
  const maxBodyBytes = options.maxBodyBytes ?? 64 * mib;
  const basePath = base.pathname.replace(/\/+$/, "");
  const origin = base.origin;
  const retryPolicy = options.retry ?? {};
  const maxAttempts = Math.max(1, retryPolicy.maxAttempts ?? 3);
  const budget = options.retryBudget ?? createRetryBudget();
  const random = options.random ?? Math.random;

  /**
   * The request target (path and query) below the base URL. A plain path (segments of letters,
   * digits, `_` and `-`, as every Coze path is) is used as it is; anything else is normalized by
   * the URL parser. Query values are form-encoded, as `URLSearchParams` does.
   */
  function pathOf(req: CozeRequest): string {
    const path = plainPath.test(req.path)
      ? basePath + req.path
      : new URL(basePath + req.path, base.origin).pathname;
    let search: URLSearchParams | undefined;
    const query = req.query;
    for (const k in query) {
      const v = query[k];
      if (v !== undefined) {
        search ??= new URLSearchParams();
        search.set(k, String(v));
      }
    }
    return search === undefined ? path : `${path}?${search}`;
  }

  function report(
    req: CozeRequest,
    started: number,
    status: number | undefined,
    err: unknown,
    logId: string | undefined,
    retriedAuth: boolean,
    retries: number,
  ) {
    const callLogId = err instanceof CozeError ? (err.logId ?? logId) : logId;
    noteLogId(req.trace, callLogId);
    options.onCall?.({
      step: req.step,
      status,
      durationMs: clock.now() - started,
      outcome: err === undefined ? "ok" : err instanceof CozeError ? err.code : "unavailable",
      logId: callLogId,
      retriedAuth,
      retries,
    });
  }

  /** The options of one upstream request (undici's pool `request`). */
  function dispatchOf(
    req: CozeRequest,
    token: string,
    signal: AbortSignal,
    stream: boolean,
  ): Dispatcher.RequestOptions {
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      accept: stream ? "text/event-stream, application/json" : "application/json",
    };
    if (options.userAgent) headers["user-agent"] = options.userAgent;
    let body: string | FormData | undefined;
    if (req.form !== undefined) {
      body = req.form;
    } else if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers["content-type"] = "application/json";
    }
    // The pool's own `request`, not undici's top-level one: that would parse the URL again.
    return {
      origin,
      path: pathOf(req),
      method: req.method,
      headers,
      body,
      signal,
      headersTimeout: undiciTimeout(headersTimeoutMs),
      bodyTimeout: undiciTimeout(stream ? idleTimeoutMs : requestTimeoutMs),
    };
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
          try {
            token = await options.tokens.getToken(signal);
          } catch (err) {
            throw fromTransportError(req.step, err, signal);
          }
        }
        const res = await dispatcher.request(dispatchOf(req, token, signal, stream));
        out.status = res.statusCode;
        value = await handle(res, out);
      } catch (err) {
        const error = fromTransportError(req.step, err, signal);
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
          report(req, started, out.status, error, out.logId, false, out.retries);
          throw error;
        }
        out.retries++;
        try {
          await clock.sleep(delay, signal);
        } catch {
          report(req, started, out.status, error, out.logId, false, out.retries);
          throw error;
        }
        n++;
        retriedAuth = false;
        continue;
      }
      // Outside the try: a failing report is not a failed call to send again.
      report(req, started, out.status, undefined, value.logId, retriedAuth, out.retries);
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

    stream(req) {
      // The headers phase is bounded by headersTimeoutMs inside undici; the open stream by the
      // idle timeout. The caller's signal cancels either. Stream calls start runs: only a request
      // that never left is sent again.
      const signal = req.signal ?? new AbortController().signal;
      return exchange(req, signal, true, (res) =>
        openStream(req.step, res, signal, maxBodyBytes, clock),
      );
    },
  };
}

/** undici takes a finite number of ms, 0 meaning none. */
function undiciTimeout(ms: number): number {
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

function isTokenRejection(err: unknown): boolean {
  return (
    err instanceof CozeError &&
    (err.code === "authentication" || err.cozeCode === 4101) &&
    err.step !== "token"
  );
}

async function openStream(
  step: string,
  res: Dispatcher.ResponseData,
  signal: AbortSignal,
  maxBodyBytes: number,
  clock: Clock,
): Promise<StreamResponse> {
  const headerLog = headerValue(res.headers, "x-tt-logid");
  if (
    !headerValue(res.headers, "content-type")?.includes("event-stream") ||
    res.statusCode >= 300
  ) {
    // An error before the stream starts is a JSON envelope (coze-api.md §4.5 "Errors before the
    // stream starts"). Anything that decodes as success here is still not a stream.
    await readEnvelope(step, res, maxBodyBytes, signal, clock);
    throw new CozeError("protocol", safeMessage("protocol", step), {
      step,
      status: res.statusCode,
      logId: headerLog,
    });
  }
  const body = res.body;
  // The chunks stay bytes (undici's body ignores setEncoding); the SSE decoder decodes them.
  const reader = createBatchReader(step, body);
  // Keep-alive pings say nothing yet: the stream counts as open (a failover boundary) at its
  // first other event, which may still be an error envelope. Everything read until then (pings
  // included) is the stream's first batch.
  const first: SseEvent[] = [];
  let head: SseEvent | undefined;
  try {
    for (;;) {
      const over = reader.take(first);
      head = first.find(isNotPing);
      if (head !== undefined || over) break;
      await reader.wait();
    }
  } catch (err) {
    body.destroy();
    throw fromTransportError(step, err, signal);
  }
  // js special-cases a stream whose only content is a bare `{"code":4101,...}` envelope
  // (coze-api.md §1.4, §10.1): treat it like an envelope answered before the stream.
  if (head !== undefined && head.event === undefined) {
    const bare = tryParseObject(head.data);
    const error = bare && envelopeError(step, res.statusCode, bare, headerLog);
    if (error) {
      body.destroy();
      throw error;
    }
  }
  return new EventStream(
    step,
    res.statusCode,
    headerLog,
    body,
    signal,
    reader,
    first.length > 0 ? first : undefined,
  );
}

type BatchReader = ReturnType<typeof createBatchReader>;

/**
 * An open Coze event stream. A class, so that its methods are made once: an object literal with
 * a computed `[Symbol.asyncIterator]` key went through a slow runtime path on every call (issue
 * #6 profile: about 7 µs per request).
 */
class EventStream implements StreamResponse {
  #consumed = false;

  constructor(
    readonly step: string,
    readonly status: number,
    readonly logId: string | undefined,
    private readonly body: Dispatcher.ResponseData["body"],
    private readonly signal: AbortSignal,
    private readonly reader: BatchReader,
    /** The events read while opening (`undefined`: the body was empty). */
    private readonly first: readonly SseEvent[] | undefined,
  ) {}

  close(): void {
    void releaseBody(this.body);
  }

  async *batches(): AsyncGenerator<readonly SseEvent[], void, undefined> {
    this.#claim();
    try {
      for (let batch = this.first; batch !== undefined; batch = await this.#next()) yield batch;
    } finally {
      // Release the connection if the consumer stopped early; a fully read body is done.
      await releaseBody(this.body);
    }
  }

  async consume(onBatch: (events: readonly SseEvent[]) => boolean | undefined): Promise<void> {
    this.#claim();
    try {
      if (this.first === undefined || onBatch(this.first) === true) return;
      for (;;) {
        const out: SseEvent[] = [];
        let over: boolean;
        try {
          over = this.reader.take(out);
        } catch (err) {
          throw fromTransportError(this.step, err, this.signal);
        }
        if (out.length > 0 && onBatch(out) === true) return;
        if (over) return;
        await this.reader.wait();
      }
    } finally {
      await releaseBody(this.body);
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<SseEvent, void, undefined> {
    for await (const batch of this.batches()) {
      for (const event of batch) yield event;
    }
  }

  #claim(): void {
    if (this.#consumed) throw new TypeError("a Coze event stream can be read once");
    this.#consumed = true;
  }

  async #next(): Promise<readonly SseEvent[] | undefined> {
    try {
      return await this.reader.next();
    } catch (err) {
      throw fromTransportError(this.step, err, this.signal);
    }
  }
}

/**
 * Reads an event stream body as it arrives: `take(out)` decodes every chunk buffered so far into
 * `out` (synchronously), `wait()` resolves when more can be taken. `next()` resolves with the
 * events of the next chunks that complete any (the events before a bad line come first, its error
 * on the following call), or `undefined` at the end of the body. One promise per wake-up of the
 * body, however many chunks it brought, and no generator of ours or Node's per chunk (issue #6:
 * a Coze answer arrives in as many chunks as it has events when traffic is light). The body stays
 * paused while nobody takes from it, so a slow reader slows the upstream connection down instead
 * of buffering without bound.
 */
function createBatchReader(step: string, body: Dispatcher.ResponseData["body"]) {
  const decoder = createSseDecoder({ step });
  // Set when the body has ended or failed (with the error; a destroyed body's premature close is
  // an error too, as it is for Node's own iterator). The first outcome stands.
  let outcome: "ended" | { error: unknown } | undefined;
  let failure: { error: unknown } | undefined;
  let decoded = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const settle = (value: "ended" | { error: unknown }) => {
    outcome ??= value;
    notify();
  };
  // Plain listeners rather than stream.finished(), which sets up a dozen per body.
  body.on("readable", notify);
  body.once("end", () => settle("ended"));
  body.once("error", (error) => settle({ error }));
  // Closed before its end and without an error: destroyed, like Node's own iterator reports it.
  body.once("close", () => {
    // An Error captures a stack: made only when it is the outcome.
    if (outcome === undefined) settle({ error: prematureClose() });
  });
  const reader = {
    /**
     * Decodes what has arrived into `out`; true once the body is over and fully decoded. Throws
     * the body's error or a protocol error, after the events before it were given out.
     */
    take(out: SseEvent[]): boolean {
      if (failure) throw failure.error;
      try {
        if (!body.destroyed) {
          for (let chunk = body.read(); chunk !== null; chunk = body.read()) {
            decoder.push(chunk, out);
          }
        }
        if (outcome === undefined) return false;
        if (outcome !== "ended") throw outcome.error;
        if (!decoded) {
          decoded = true;
          decoder.end(out);
        }
        return true;
      } catch (error) {
        if (out.length === 0) throw error;
        failure = { error };
        return false;
      }
    },
    /** Resolves when the body has more to take, or has ended; at once when a failure waits. */
    wait(): Promise<void> {
      if (failure !== undefined || outcome !== undefined) return Promise.resolve();
      return new Promise((resolve) => {
        wake = resolve;
      });
    },
    async next(): Promise<readonly SseEvent[] | undefined> {
      for (;;) {
        const out: SseEvent[] = [];
        const over = reader.take(out);
        if (out.length > 0) return out;
        if (over) return undefined;
        await reader.wait();
      }
    },
  };
  return reader;
}

function isNotPing(event: SseEvent): boolean {
  return event.event !== "ping" && event.event !== "PING";
}

function prematureClose(): Error {
  return Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
}

/**
 * Releases an event stream body whose reader stopped early, and resolves once it has closed.
 * Coze ends the response right after `done` (coze-api.md §4.5), so by the time a reader stops
 * there undici has usually received all of it: reading out what is buffered ends the body
 * normally, and the connection goes back to the pool. Destroying such a body would abort a
 * finished request, which costs undici a `RequestAbortedError` and its stack trace on every call
 * (issue #6 profile: about 6% of the gateway's CPU). A body still arriving is destroyed on the
 * next tick (reading it out schedules its `end` first when it has ended), which closes the
 * connection: Coze sees the client go away. Waiting for the close matters: undici removes its
 * listener from the call's signal only then, and a Connect call's signal is aborted as soon as its
 * answer is sent, which would otherwise make undici destroy the finished body after all.
 */
function releaseBody(body: Dispatcher.ResponseData["body"]): Promise<void> {
  if (body.closed) return Promise.resolve();
  const closed = new Promise<void>((resolve) => body.once("close", () => resolve()));
  if (!body.destroyed && !body.readableEnded) {
    while (body.read() !== null) {
      // Discard what is buffered.
    }
    process.nextTick(() => {
      if (!body.destroyed && !body.readableEnded) body.destroy();
    });
  }
  return closed;
}
