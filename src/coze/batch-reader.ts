import type { Readable } from "node:stream";
import { createSseDecoder, type SseEvent } from "./sse.js";

/**
 * Reads an event stream body as it arrives, one batch of events per wake-up of the body, made by
 * {@link createBatchReader}.
 */
export interface BatchReader {
  /**
   * Decodes every chunk buffered so far into `out`, synchronously; true once the body is over and
   * fully decoded. Throws the body's error or a protocol error, after the events before it were
   * given out (on an earlier call when this one has events to give).
   */
  take(out: SseEvent[]): boolean;
  /** Resolves when the body has more to take, or has ended; at once when a failure waits. */
  wait(): Promise<void>;
}

/**
 * Creates the {@link BatchReader} of an event stream body. One promise per wake-up of the body,
 * however many chunks it brought, and no generator of ours or Node's per chunk (issue #6: a Coze
 * answer arrives in as many chunks as it has events when traffic is light). The body stays paused
 * while nobody takes from it, so a slow reader slows the upstream connection down instead of
 * buffering without bound.
 */
export function createBatchReader(step: string, body: Readable): BatchReader {
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
  return {
    take(out) {
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
    wait() {
      if (failure !== undefined || outcome !== undefined) return Promise.resolve();
      return new Promise((resolve) => {
        wake = resolve;
      });
    },
  };
}

function prematureClose(): Error {
  return Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
}

/**
 * Releases an event stream body, and resolves once it has closed. Coze ends the response right
 * after `done` (coze-api.md §4.5), so by the time a reader stops there undici has usually
 * received all of it: reading out what is buffered ends the body normally, and the connection
 * goes back to the pool. Destroying such a body would abort a finished request, which makes
 * undici build a `RequestAbortedError` and format its stack trace on every call: work the hot
 * path does for nothing (issue #6; the figures are in BENCHMARKS.md). A body still arriving is
 * destroyed on the next tick (reading it out schedules its `end` first when it has ended), which
 * closes the connection: Coze sees the client go away. Waiting for the close matters: undici
 * removes its listener from the call's signal only then, and a Connect call's signal is aborted
 * as soon as its answer is sent, which would otherwise make undici destroy the finished body
 * after all.
 */
export function releaseBody(body: Readable): Promise<void> {
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
