import { Readable } from "node:stream";
import { createBatchReader, releaseBody } from "../../src/coze/batch-reader.js";
import type { StreamResponse } from "../../src/coze/event-stream.js";
import type { SseEvent } from "../../src/coze/sse.js";

/**
 * An open {@link StreamResponse} (status 200, log id `LOG`) whose body is `chunks` of SSE text or
 * bytes, read by the client's own batch reader and SSE decoder: what `CozeHttp.stream` hands a
 * chat or workflow reader, without a server.
 */
export function streamResponseOf(step: string, ...chunks: (string | Uint8Array)[]): StreamResponse {
  const body = Readable.from(
    chunks.map((chunk) => Buffer.from(chunk)),
    { objectMode: false },
  );
  const reader = createBatchReader(step, body);
  return {
    status: 200,
    logId: "LOG",
    take: (out) => reader.take(out),
    wait: () => reader.wait(),
    close: () => releaseBody(body),
  };
}

/**
 * Reads `stream` to its end, or until `onEvent` returns true, then closes it. Resolves with the
 * events read; rejects like `take` throws, after `onEvent` saw the events before the failure.
 */
export async function readEvents(
  stream: StreamResponse,
  onEvent?: (event: SseEvent) => boolean | undefined,
): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  try {
    for (;;) {
      const batch: SseEvent[] = [];
      const over = stream.take(batch);
      for (const event of batch) {
        events.push(event);
        if (onEvent?.(event) === true) return events;
      }
      if (over) return events;
      await stream.wait();
    }
  } finally {
    await stream.close();
  }
}
