import type { ServerResponse } from "node:http";
import type { NodeResponse } from "./node-types.js";

/** Options of {@link createSseStream}. */
export interface SseStreamOptions {
  /** Longest silence before a `: keep-alive` comment, in ms (issue #4: at most 15 000). */
  heartbeatMs: number;
  /**
   * Called when `heartbeatMs` passes before {@link SseStream.start}: the caller should start the
   * stream (headers and role chunk) so the client sees it is alive and heartbeats can follow.
   */
  onIdle: () => void;
  /** Called when the stream starts; the function it returns is called once when it ends. */
  onOpen?: () => () => void;
}

/** One server-sent event stream of a streamed completion. */
export interface SseStream {
  /** True once the headers were written. */
  readonly started: boolean;
  /** True once the stream was ended (by `done`, `fail`, or the client going away). */
  readonly ended: boolean;
  /** Writes status 200, the SSE headers plus `headers`, and the first event. */
  start(headers: Record<string, string>, first: string): void;
  /**
   * Writes one whole event. Returns a promise only when the client reads slower than the stream
   * is produced (wait for it: back pressure reaches the upstream); `undefined` otherwise.
   */
  write(event: string): Promise<void> | undefined;
  /**
   * Writes the last events and ends the response: the door's own ending (`data: [DONE]`, a
   * `response.completed` event, an error event).
   */
  end(last: string): void;
  /** Stops the heartbeat timer. Call when the completion is finished, in any way. */
  close(): void;
}

const keepAlive = ": keep-alive\n\n";

/**
 * Creates the SSE writer of a streamed completion (issue #4 decision 7): `Content-Type:
 * text/event-stream`, `Cache-Control: no-cache`, events written as they come (no buffering),
 * and a `: keep-alive` comment whenever `heartbeatMs` passed without a write. One timer per
 * stream, re-armed with `refresh()` (no allocation per event).
 */
export function createSseStream(res: NodeResponse, options: SseStreamOptions): SseStream {
  // Both Node response types write and end alike; TypeScript cannot call the union's overloads.
  const out = res as ServerResponse;
  let started = false;
  let ended = false;
  let onEnd: (() => void) | undefined;
  const finish = () => {
    onEnd?.();
    onEnd = undefined;
  };
  const timer = setTimeout(function tick() {
    if (ended) return;
    if (!started) options.onIdle();
    else if (!res.writableEnded) out.write(keepAlive);
    timer.refresh();
  }, options.heartbeatMs);

  const end = (last: string) => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    finish();
    if (!res.writableEnded && !res.destroyed) res.end(last);
  };

  return {
    get started() {
      return started;
    },
    get ended() {
      return ended || res.writableEnded || res.destroyed;
    },
    start(headers, first) {
      started = true;
      onEnd = options.onOpen?.();
      // A client that goes away ends the stream too.
      res.once("close", finish);
      res.statusCode = 200;
      res.setHeader("content-type", "text/event-stream; charset=utf-8");
      res.setHeader("cache-control", "no-cache");
      // Proxies such as nginx would otherwise hold the events back.
      res.setHeader("x-accel-buffering", "no");
      for (const name in headers) res.setHeader(name, headers[name] as string);
      out.write(first);
      timer.refresh();
    },
    write(event) {
      if (ended || res.writableEnded || res.destroyed) return undefined;
      timer.refresh();
      return out.write(event) ? undefined : drained(out);
    },
    end,
    close() {
      ended = true;
      clearTimeout(timer);
      finish();
    },
  };
}

/** Resolves when `res` can take more data, or when it closed. */
function drained(r: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      r.off("drain", done);
      r.off("close", done);
      resolve();
    };
    r.on("drain", done);
    r.on("close", done);
  });
}
