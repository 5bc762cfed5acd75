import { type Ctx, destroySocket, encodeJson } from "./http-io.js";

/**
 * Frame layouts (§4.5, §5.2, §7.4):
 * - `chat`: `event:NAME\ndata:JSON\n\n`, no space after the colon, as in the recorded `/v3/chat`
 *   stream (py:tests/testdata/chat_text_stream_resp.txt);
 * - `chatflow`: `event: NAME\ndata: JSON\n\n`, with a space, as in the recorded
 *   `/v1/workflows/chat` stream;
 * - `workflow`: `id: N\nevent: NAME\ndata: JSON\n\n`, ids from 0 on every response.
 * Every line ends in `\n`, the `data:` line directly follows the `event:` line (go and java read
 * the next line blindly), no comments, no `retry:`.
 */
export type SseFormat = "chat" | "chatflow" | "workflow";

/** An open `text/event-stream` response. */
export interface SseStream {
  /**
   * Writes one event (`data` is JSON-encoded: a string becomes `"[DONE]"` with quotes). Resolves
   * `false`, without writing, once the stream can no longer be written: the client went away, the
   * emulator is closing, or a `reset`/`stall` fault fired. Producers stop on `false`.
   */
  send(event: string, data: unknown): Promise<boolean>;
  /** Ends the response right away (§4.5: close right after `done`), firing pending faults. */
  end(): void;
  /** Resolves once the response is closed: finished, reset, or the client went away. */
  readonly closed: Promise<void>;
}

/** The line a `malformed` fault writes: not `field:value`, so SSE parsers skip or reject it. */
export const MALFORMED_LINE = 'dat{"x"\n';

/**
 * Sends the SSE headers (`Content-Type: text/event-stream`, `X-Tt-Logid`) and returns the
 * writer. Counts the stream in `openStreams` until the response closes. Applies the call's
 * `reset`/`stall`/`malformed` fault when `afterEvents` events have been written; a fault whose
 * count is never reached fires when the stream ends, so an injected fault always shows.
 */
export function openSse(ctx: Ctx, format: SseFormat): SseStream {
  const { res, plan } = ctx;
  res.writeHead(200, {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Tt-Logid": ctx.logid,
  });
  res.flushHeaders();
  ctx.stats.streamOpened();
  const closed = new Promise<void>((resolve) => {
    const onClose = () => {
      ctx.stats.streamClosed();
      resolve();
    };
    // The client may have gone while the request body was read: "close" has fired already.
    if (res.closed) onClose();
    else res.once("close", onClose);
  });

  let written = 0;
  let stalled = false;
  let cut = false;
  let malformedDone = false;
  let nextId = 0;

  const writable = () =>
    !stalled && !cut && !res.destroyed && !res.writableEnded && !ctx.signal.aborted;

  /** Fires the faults due before event number `written`; false when the stream must stop. */
  const fireDue = (atEnd: boolean): boolean => {
    const due = (k: number | undefined) =>
      k !== undefined && (k === written || (atEnd && k > written));
    if (due(plan.malformedAfter) && !malformedDone) {
      malformedDone = true;
      res.write(MALFORMED_LINE);
    }
    if (due(plan.resetAfter)) {
      cut = true;
      destroySocket(res);
      return false;
    }
    if (due(plan.stallAfter)) {
      stalled = true;
      return false;
    }
    return true;
  };

  fireDue(false);

  return {
    async send(event, data) {
      if (!writable() || !fireDue(false)) return false;
      const json = encodeJson(data);
      const frame =
        format === "chat"
          ? `event:${event}\ndata:${json}\n\n`
          : format === "chatflow"
            ? `event: ${event}\ndata: ${json}\n\n`
            : `id: ${nextId++}\nevent: ${event}\ndata: ${json}\n\n`;
      written += 1;
      if (!res.write(frame)) {
        // Back-pressure: wait for the client to read, or for the connection to go away.
        await Promise.race([new Promise((resolve) => res.once("drain", resolve)), closed]);
      }
      return writable();
    },
    end() {
      if (!writable() || !fireDue(true)) return;
      res.end();
    },
    closed,
  };
}
