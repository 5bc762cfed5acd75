import type { Dispatcher } from "undici";
import { type BatchReader, createBatchReader, releaseBody } from "./batch-reader.js";
import type { Clock } from "./clock.js";
import { envelopeError, headerValue, readEnvelope } from "./envelope.js";
import { CozeError, fromTransportError, safeMessage } from "./errors.js";
import type { SseEvent } from "./sse.js";
import { tryParseObject } from "./wire.js";

/**
 * An open event stream, read one way: `take` what has arrived, and `wait` when it gave nothing
 * new. Readers loop
 *
 * ```ts
 * for (;;) { const out = []; const over = stream.take(out); ...; if (over) break; await stream.wait(); }
 * ```
 *
 * which costs one promise per wake-up of the body, however many events it brought, and no
 * generator of its own (issue #6). Whoever reads it calls `close()` when done, at the end too.
 */
export interface StreamResponse {
  readonly status: number;
  readonly logId: string | undefined;
  /**
   * Moves the events that arrived since the last call into `out`, at once; true once the stream
   * is over and every event was given out.
   *
   * @throws CozeError when the stream failed (`timeout` when it was idle too long, `unavailable`
   *   when it broke, `protocol` on a bad line), after the events before the failure were given
   *   out.
   */
  take(out: SseEvent[]): boolean;
  /** Resolves when `take` has more to give, or the stream ended or failed. Never rejects. */
  wait(): Promise<void>;
  /**
   * Releases the connection (which also tells Coze the client went away, unless the stream was
   * over) and resolves once it is closed. Safe to call again.
   */
  close(): Promise<void>;
}

/**
 * Opens the event stream `res` answers with. An error answered before the stream (a JSON
 * envelope, coze-api.md §4.5), or a bare JSON error envelope as the stream's first event other
 * than a keep-alive ping (§1.4, §10.1), is thrown as a {@link CozeError}; an answer that is not an
 * event stream at all is `protocol`. The events read until then are the stream's first batch.
 * `atHeaders`: the stream counts as open at its headers, without waiting for a first event (a
 * bare error envelope then comes as the stream's first event, for its reader to throw).
 */
export async function openStream(
  step: string,
  res: Dispatcher.ResponseData,
  signal: AbortSignal,
  maxBodyBytes: number,
  clock: Clock,
  atHeaders = false,
): Promise<StreamResponse> {
  const headerLog = headerValue(res.headers, "x-tt-logid");
  const contentType = headerValue(res.headers, "content-type");
  if (!contentType?.includes("event-stream") || res.statusCode >= 300) {
    // Anything that decodes as success here is still not a stream.
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
    for (; !atHeaders; ) {
      const over = reader.take(first);
      head = first.find(isNotPing);
      if (head !== undefined || over) break;
      await reader.wait();
    }
  } catch (err) {
    body.destroy();
    throw fromTransportError(step, err, signal);
  }
  if (head !== undefined && head.event === undefined) {
    const bare = tryParseObject(head.data);
    const error = bare && envelopeError(step, res.statusCode, bare, headerLog);
    if (error) {
      body.destroy();
      throw error;
    }
  }
  return new EventStream(step, res.statusCode, headerLog, body, signal, reader, first);
}

/**
 * An open Coze event stream. A class, so that its methods are made once per process rather than
 * once per request.
 */
class EventStream implements StreamResponse {
  constructor(
    readonly step: string,
    readonly status: number,
    readonly logId: string | undefined,
    private readonly body: Dispatcher.ResponseData["body"],
    private readonly signal: AbortSignal,
    private readonly reader: BatchReader,
    /** The events read while opening, until the first `take` hands them out. */
    private first: SseEvent[] | undefined,
  ) {}

  take(out: SseEvent[]): boolean {
    const first = this.first;
    if (first !== undefined) {
      this.first = undefined;
      for (const event of first) out.push(event);
    }
    try {
      return this.reader.take(out);
    } catch (err) {
      // A failure met while opening comes after the events read before it: the reader keeps it
      // for the next call.
      if (first !== undefined && first.length > 0) return false;
      throw fromTransportError(this.step, err, this.signal);
    }
  }

  wait(): Promise<void> {
    return this.first === undefined ? this.reader.wait() : Promise.resolve();
  }

  close(): Promise<void> {
    return releaseBody(this.body);
  }
}

function isNotPing(event: SseEvent): boolean {
  return event.event !== "ping" && event.event !== "PING";
}
