import { type ChatResult, createChatAccumulator } from "./chat-result.js";
import {
  type ChatInfo,
  type ChatMessage,
  parseChat,
  parseMessage,
  type ToolCall,
} from "./chat-types.js";
import { envelopeError, streamEventError } from "./envelope.js";
import { CozeError, safeMessage } from "./errors.js";
import type { StreamResponse } from "./event-stream.js";
import type { SseEvent } from "./sse.js";
import { num, obj, parseJsonObject, str } from "./wire.js";

/**
 * A typed event of a Coze chat stream (`/v3/chat`, `submit_tool_outputs`, `/v1/workflows/chat`),
 * coze-api.md §4.5.
 *
 * Failures are typed events too (`chat.failed`, `error`), so a relay can show them; the
 * iterator then throws a {@link CozeError} right after yielding them, so no consumer can
 * mistake a failed chat for a finished one.
 */
export type ChatEvent =
  | { type: "chat.created"; chat: ChatInfo }
  | { type: "chat.in_progress"; chat: ChatInfo }
  /** An incremental piece: `message.content` and `message.reasoningContent` hold only the new text. */
  | { type: "message.delta"; message: ChatMessage }
  | { type: "audio.delta"; message: ChatMessage }
  /** A whole message: answers, and the verbose, follow_up and tool messages that have no deltas. */
  | { type: "message.completed"; message: ChatMessage }
  | { type: "chat.completed"; chat: ChatInfo }
  | { type: "chat.requires_action"; chat: ChatInfo; toolCalls: ToolCall[] }
  | { type: "chat.failed"; chat: ChatInfo | undefined; code: number; msg: string }
  | { type: "error"; code: number; msg: string }
  /** The stream's end marker; `debugUrl` on chatflow streams. */
  | { type: "done"; debugUrl: string | undefined };

/** What the chat stream has learned so far; read it in `finally` to clean up upstream. */
export interface ChatStreamState {
  conversationId: string | undefined;
  chatId: string | undefined;
  /** True once the chat reached completed, failed, requires_action or canceled. */
  finished: boolean;
}

/**
 * Turns the SSE events of a chat stream into {@link ChatEvent}s, one event at a time and
 * synchronously. `handle` passes the events an SSE event stands for to `emit` and returns `true`
 * after `done`; a failure (`chat.failed`, `error`, a bare error envelope) is emitted first and then
 * thrown as a {@link CozeError}, so no consumer can mistake a failed chat for a finished one.
 * `end` is called when the body ended without `done`: it throws `unavailable` unless the chat
 * already finished ("a cut stream never looks like success").
 */
export function createChatEventReader(
  step: string,
  stream: Pick<StreamResponse, "status" | "logId">,
  state: ChatStreamState,
) {
  const protocol = () =>
    new CozeError("protocol", safeMessage("protocol", step), { step, logId: stream.logId });
  return {
    handle(sse: SseEvent, emit: (event: ChatEvent) => void): boolean {
      if (sse.event === undefined) {
        // A bare JSON line: an error envelope inside the stream (coze-api.md §10.1).
        const body = parseJsonObject(step, sse.data);
        throw envelopeError(step, stream.status, body, stream.logId) ?? protocol();
      }
      const name = sse.event;
      if (name === "done") {
        emit({ type: "done", debugUrl: parseDone(sse.data) });
        return true;
      }
      if (name === "ping" || name === "PING") return false;
      const data = parseJsonObject(step, sse.data);
      switch (name) {
        case "conversation.chat.created":
        case "conversation.chat.in_progress":
        case "conversation.chat.completed":
        case "conversation.chat.requires_action":
        case "conversation.chat.canceled": {
          const chat = parseChat(data);
          if (!chat) throw new CozeError("protocol", safeMessage("protocol", step), { step });
          state.conversationId = chat.conversationId || state.conversationId;
          state.chatId = chat.id;
          if (name === "conversation.chat.created") emit({ type: "chat.created", chat });
          else if (name === "conversation.chat.in_progress")
            emit({ type: "chat.in_progress", chat });
          else if (name === "conversation.chat.completed") {
            state.finished = true;
            emit({ type: "chat.completed", chat });
          } else if (name === "conversation.chat.requires_action") {
            state.finished = true;
            emit({ type: "chat.requires_action", chat, toolCalls: chat.toolCalls });
          } else {
            state.finished = true;
            throw new CozeError("canceled", safeMessage("canceled", step), {
              step,
              logId: stream.logId,
            });
          }
          return false;
        }
        case "conversation.message.delta":
        case "conversation.audio.delta":
        case "conversation.message.completed": {
          const message = parseMessage(data);
          if (!message) throw new CozeError("protocol", safeMessage("protocol", step), { step });
          emit({
            type:
              name === "conversation.message.delta"
                ? "message.delta"
                : name === "conversation.audio.delta"
                  ? "audio.delta"
                  : "message.completed",
            message,
          });
          return false;
        }
        case "conversation.chat.failed": {
          // Recorded form: a Chat object with last_error; docs form: a bare {code,msg} with the
          // code sometimes a string (coze-api.md §4.5, §9). Accept both.
          const chat = parseChat(data);
          const code = chat?.lastError?.code ?? num(data.code) ?? 0;
          const msg = chat?.lastError?.msg ?? str(data.msg) ?? "";
          state.finished = true;
          emit({ type: "chat.failed", chat, code, msg });
          throw new CozeError("failed", safeMessage("failed", step, code || undefined), {
            step,
            cozeCode: code || undefined,
            cozeMessage: msg,
            logId: stream.logId,
          });
        }
        case "error": {
          const code = num(data.code) ?? 0;
          const msg = str(data.msg) ?? "";
          emit({ type: "error", code, msg });
          throw streamEventError(step, code, msg, stream.logId);
        }
        default:
          // Events this client does not know (new Coze features) are skipped, like go does.
          return false;
      }
    },
    end(): void {
      if (!state.finished) {
        throw new CozeError("unavailable", `${step}: stream ended before the chat finished`, {
          step,
          logId: stream.logId,
        });
      }
    },
  };
}

/**
 * Reads a whole chat stream, handing every {@link ChatEvent} to `onEvent` as it arrives, with the
 * failures of {@link createChatEventReader}. One async function over the body (no generator per
 * event): the non-stream path (issue #6). Closes the stream whether it succeeds or fails, then
 * calls `onEnd`.
 */
async function readChatEvents(
  step: string,
  stream: StreamResponse,
  state: ChatStreamState,
  onEvent: (event: ChatEvent) => void,
  onEnd?: () => void,
): Promise<void> {
  const reader = createChatEventReader(step, stream, state);
  try {
    for (;;) {
      const batch: SseEvent[] = [];
      const over = stream.take(batch);
      for (const sse of batch) {
        if (reader.handle(sse, onEvent)) return;
      }
      if (over) break;
      await stream.wait();
    }
    reader.end();
  } finally {
    await stream.close();
    onEnd?.();
  }
}

/**
 * Turns the SSE events of a chat stream into {@link ChatEvent}s (see
 * {@link createChatEventReader}). Ends after `done`, or at the end of the body when the chat
 * already finished. Leaves closing the stream to its caller.
 */
async function* chatEvents(
  step: string,
  stream: StreamResponse,
  state: ChatStreamState,
): AsyncGenerator<ChatEvent, void> {
  const reader = createChatEventReader(step, stream, state);
  // An SSE event stands for at most one chat event.
  let current: ChatEvent | undefined;
  const emit = (event: ChatEvent) => {
    current = event;
  };
  // One await per wake-up of the body, not per event (issue #6): a turn's events often share one.
  for (;;) {
    const batch: SseEvent[] = [];
    const over = stream.take(batch);
    for (const sse of batch) {
      current = undefined;
      let done: boolean;
      try {
        done = reader.handle(sse, emit);
      } catch (err) {
        // The failure's own event goes out before the failure.
        if (current !== undefined) yield current;
        throw err;
      }
      if (current !== undefined) yield current;
      if (done) return;
    }
    if (over) break;
    await stream.wait();
  }
  reader.end();
}

/**
 * One turn whose event stream is open: read it once, either way. Unfinished turns (the reader
 * stopped, the stream broke) call `onAbandon` after the stream was released.
 */
export interface ChatTurn {
  /**
   * Reads the turn to its end, handing each event to `onEvent` as it arrives (the non-stream
   * path: one async function, no generator per event). Rejects like `events()` throws.
   */
  read(onEvent: (event: ChatEvent) => void): Promise<void>;
  /** The turn's events, for relaying them one by one. */
  events(): AsyncGenerator<ChatEvent, void>;
}

/** The {@link ChatTurn} of an open chat stream. */
export function createChatTurn(
  step: string,
  stream: StreamResponse,
  state: ChatStreamState,
  onAbandon: () => void = () => {},
): ChatTurn {
  return {
    read: (onEvent) => readChatEvents(step, stream, state, onEvent, onAbandon),
    async *events() {
      try {
        yield* chatEvents(step, stream, state);
      } finally {
        await stream.close();
        onAbandon();
      }
    },
  };
}

/** Reads a turn into a {@link ChatResult}. */
export function collectTurn(turn: ChatTurn): Promise<ChatResult> {
  const acc = createChatAccumulator();
  return turn.read(acc.add).then(acc.result);
}

/** Reads a `done` payload: `"[DONE]"`, `[DONE]`, empty, or `{debug_url}` (§4.5). */
function parseDone(data: string): string | undefined {
  const trimmed = data.trim();
  if (!trimmed.startsWith("{")) return undefined;
  try {
    return str(obj(JSON.parse(trimmed))?.debug_url);
  } catch {
    return undefined;
  }
}
