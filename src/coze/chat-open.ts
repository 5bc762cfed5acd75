import {
  type ChatStreamState,
  type ChatTurn,
  createChatEventReader,
  createChatTurn,
} from "./chat-stream.js";
import type { Clock } from "./clock.js";
import { fromTransportError } from "./errors.js";
import type { StreamResponse } from "./event-stream.js";
import type { SseEvent } from "./sse.js";
import { createUpstreamAbort, type UpstreamAbort } from "./upstream-abort.js";

/** Options of {@link openChatTurn}. */
export interface OpenChatTurnOptions {
  /** Names the upstream step in errors, e.g. `chat.stream`. */
  step: string;
  /** Sends the request that answers with the chat's event stream, aborted by `signal`. */
  send: (signal: AbortSignal) => Promise<StreamResponse>;
  /** What the stream has told of the chat; `abandon` reads it. */
  state: ChatStreamState;
  /** The caller's signal: aborting it ends the turn for the caller at once. */
  signal: AbortSignal | undefined;
  clock: Clock;
  /** Cancels the chat `state` names unless it finished; best effort, never throws. */
  abandon: () => void;
  /**
   * How long a chat abandoned before Coze named it may still be read to learn its id, in ms.
   * Past it the upstream request is dropped and the chat, if Coze made one, is not canceled.
   */
  learnIdTimeoutMs: number;
}

/**
 * Opens the event stream of a chat turn (`/v3/chat`, `submit_tool_outputs`,
 * `/v1/workflows/chat`) so that a caller who goes away, at any moment, leaves no chat running on
 * Coze (issue #13: Coze lets a chat whose stream was dropped run on and keeps its conversation
 * busy, 4016). Resolves like `CozeHttp.stream` once the stream is open; a turn left unfinished
 * calls `abandon` after its stream was released.
 *
 * The upstream request has a signal of its own. When the caller aborts after the stream opened,
 * the request is aborted with the caller's reason: the turn's reader fails, then `abandon`
 * cancels the chat, whose id the first events gave. When the caller aborts before that, the
 * returned promise rejects at once (`canceled`, or `timeout` for a `TimeoutError` reason), but
 * the request is not dropped: Coze may have created the chat already, and only its events name
 * it. The stream is read on in the background until the chat id is known (then `abandon`),
 * the stream ends or fails, or `learnIdTimeoutMs` passes.
 */
export function openChatTurn(options: OpenChatTurnOptions): Promise<ChatTurn> {
  const { step, state, signal: caller, abandon } = options;
  if (caller?.aborted) return Promise.reject(fromTransportError(step, caller.reason, caller));
  const upstream = createUpstreamAbort();
  const opening = options.send(upstream.signal);
  if (caller === undefined) {
    return opening.then((stream) => createChatTurn(step, stream, state, abandon));
  }
  return new Promise<ChatTurn>((resolve, reject) => {
    // One listener for the turn's life: before the stream opened it gives up on the caller's
    // behalf and reads on to learn the chat; after, it cuts the request.
    let opened = false;
    let gone = false;
    const onAbort = () => {
      if (opened) {
        upstream.abort(caller.reason);
        return;
      }
      gone = true;
      reject(fromTransportError(step, caller.reason, caller));
      readOn(opening, options, upstream);
    };
    caller.addEventListener("abort", onAbort, { once: true });
    const end = () => {
      caller.removeEventListener("abort", onAbort);
      abandon();
    };
    opening.then(
      (stream) => {
        if (gone) return;
        opened = true;
        resolve(createChatTurn(step, stream, state, end));
      },
      (err: unknown) => {
        if (gone) return;
        caller.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/**
 * Reads an abandoned turn's stream until its chat id is known, then releases it and calls
 * `abandon`. Gives up when `learnIdTimeoutMs` passes: the upstream request is aborted then.
 * Never throws.
 */
function readOn(
  opening: Promise<StreamResponse>,
  options: OpenChatTurnOptions,
  upstream: UpstreamAbort,
): void {
  const { step, state, clock, abandon } = options;
  const timer = new AbortController();
  clock.sleep(options.learnIdTimeoutMs, timer.signal).then(
    () => upstream.abort(new DOMException("chat id not learned in time", "TimeoutError")),
    () => {},
  );
  const known = () => state.finished || state.chatId !== undefined;
  const ignore = () => {};
  const read = async () => {
    const stream = await opening;
    try {
      const reader = createChatEventReader(step, stream, state);
      // The first events, read while the stream opened, usually name the chat already.
      for (;;) {
        const batch: SseEvent[] = [];
        const over = stream.take(batch);
        for (const sse of batch) {
          if (reader.handle(sse, ignore) || known()) return;
        }
        if (over) return;
        await stream.wait();
      }
    } finally {
      await stream.close();
    }
  };
  read()
    .catch(() => {
      // A failed or cut stream: whatever it told of the chat is in `state`.
    })
    .finally(() => {
      timer.abort();
      abandon();
    });
}
