import type { TurnScript } from "./bots.js";
import {
  type ChatMessage,
  type ChatRecord,
  chatWire,
  deltaWire,
  isTerminal,
  messageWire,
  usageFor,
} from "./chat-model.js";
import { newId } from "./ids.js";
import type { SseStream } from "./sse.js";
import type { EmulatorState } from "./state.js";
import { sleep } from "./timing.js";

/** How to play a turn. */
export interface PlayOptions {
  /** The SSE response for a stream call; absent for a non-stream call (runs in the background). */
  sink?: SseStream;
  /** Emit `conversation.chat.created` first (not after submit_tool_outputs). */
  emitCreated: boolean;
  /** `done` data: `"[DONE]"` for `/v3/chat`, `{debug_url}` for chatflows (§4.5). */
  doneData: unknown;
}

/**
 * `generate_answer_finish` verbose content, as recorded (§4.3, workflows_chat_stream_resp.txt).
 */
const VERBOSE_FINISH = JSON.stringify({
  msg_type: "generate_answer_finish",
  data: JSON.stringify({ finish_reason: 0, FinData: "" }),
  from_module: null,
  from_unit: null,
});

/**
 * Plays a bot turn on `chat`, updating its state as it goes and, for streams, writing the events
 * of §4.5: `conversation.chat.created`, `conversation.chat.in_progress`, deltas,
 * `conversation.message.completed` (answer, then the verbose finish, then follow-ups), then
 * `conversation.chat.completed` | `failed` | `requires_action`, then `done`, then the response
 * ends. An `error` event ends the stream without `done` (go/java stop at `error`, §7.4).
 * Canceled (§4.4 `/v3/chat/cancel`): the stream gets `done` and ends (the SDK enums have no
 * "canceled" event; §10.4 leaves it open). Client gone or stream stalled/reset: the turn stops and
 * the chat ends `canceled`, freeing its conversation; with `chatsOnDisconnect: "run_on"` it goes
 * on without the stream instead, like a non-stream turn.
 */
export async function playTurn(
  state: EmulatorState,
  chat: ChatRecord,
  script: TurnScript,
  options: PlayOptions,
): Promise<void> {
  let { sink } = options;
  const signal = AbortSignal.any([chat.abort.signal, state.shutdown]);
  const seconds = () => Math.floor(state.now() / 1000);
  const live = () => chat.status !== "canceled" && !signal.aborted;
  const step = async (event: string, data: unknown) => {
    if (!live()) return false;
    if (sink && !(await sink.send(event, data))) {
      if (state.chatsOnDisconnect !== "run_on") return false;
      // The stream is gone; the chat is not (issue #13).
      sink = undefined;
    }
    return live();
  };
  const finish = async (event: string, data: unknown, withDone = true) => {
    release(chat);
    if (!sink) return true;
    const sent =
      (await sink.send(event, data)) && (!withDone || (await sink.send("done", options.doneData)));
    if (sent) sink.end();
    return sent;
  };

  const play = async (): Promise<boolean> => {
    if (options.emitCreated && !(await step("conversation.chat.created", chatWire(chat)))) {
      return false;
    }
    chat.status = "in_progress";
    if (!(await step("conversation.chat.in_progress", chatWire(chat)))) return false;

    if (script.kind === "fail") {
      chat.status = "failed";
      chat.completedAt = seconds();
      chat.failedAt = chat.completedAt;
      if (script.form === "error_event") {
        chat.lastError = { code: 5000, msg: "internal error" };
        return finish("error", { ...chat.lastError }, false);
      }
      if (script.form === "bare") {
        // The docs' bare form (docs:chat_v3.md:250-255), not a Chat object (§9).
        chat.lastError = { code: 701231, msg: "error" };
        return finish("conversation.chat.failed", { ...chat.lastError });
      }
      // The recorded form (py:tests/testdata/chat_failed_resp.txt).
      chat.lastError = { code: 5000, msg: "event interval error" };
      return finish("conversation.chat.failed", chatWire(chat));
    }

    if (script.kind === "tool") {
      const call = message("function_call", script.functionCall, seconds());
      chat.messages.push(call);
      if (!(await step("conversation.message.completed", messageWire(chat, call)))) return false;
      chat.status = "requires_action";
      chat.requiredAction = [script.call];
      chat.completedAt = seconds();
      chat.usage = usageFor(chat.inputChars, script.functionCall.length);
      return finish("conversation.chat.requires_action", chatWire(chat));
    }

    const paceMs = script.pace === "slow" ? state.timing.slowDeltaMs : state.timing.deltaMs;
    const pace = async () => paceMs <= 0 || (await sleep(paceMs, signal));
    const answer = message("answer", "", seconds());
    for (const piece of script.reasoning) {
      if (!(await pace())) return false;
      answer.reasoningContent += piece;
      const delta = deltaWire(chat, answer, { content: "", reasoning_content: piece });
      if (!(await step("conversation.message.delta", delta))) return false;
    }
    for (const piece of script.chunks) {
      if (!(await pace())) return false;
      answer.content += piece;
      if (
        !(await step("conversation.message.delta", deltaWire(chat, answer, { content: piece })))
      ) {
        return false;
      }
    }
    const produced = [answer, message("verbose", VERBOSE_FINISH, seconds())];
    for (const text of script.followUps) produced.push(message("follow_up", text, seconds()));
    for (const m of produced) {
      chat.messages.push(m);
      if (!(await step("conversation.message.completed", messageWire(chat, m)))) return false;
    }
    chat.status = "completed";
    chat.completedAt = seconds();
    chat.usage = usageFor(chat.inputChars, answer.content.length + answer.reasoningContent.length);
    if (chat.autoSaveHistory) {
      chat.conversation.history.push({
        role: "assistant",
        type: "answer",
        content_type: "text",
        content: answer.content,
      });
    }
    return finish("conversation.chat.completed", chatWire(chat));
  };

  if (await play()) return;
  if (state.shutdown.aborted) return; // close() destroys the sockets
  if (chat.status === "canceled") {
    if (sink && (await sink.send("done", options.doneData))) sink.end();
    return;
  }
  // The stream can no longer be written (client gone, stall or reset fault): wait until the
  // connection is really closed, then the turn ends canceled.
  if (sink) await sink.closed;
  if (!isTerminal(chat.status) && chat.status !== "requires_action") cancelChat(chat);
}

/** Ends a chat as `canceled`, stops its turn and frees its conversation. */
export function cancelChat(chat: ChatRecord): void {
  chat.status = "canceled";
  chat.requiredAction = undefined;
  release(chat);
  chat.abort.abort();
}

function release(chat: ChatRecord): void {
  if (chat.conversation.activeChatId === chat.id) chat.conversation.activeChatId = undefined;
}

function message(type: ChatMessage["type"], content: string, createdAt: number): ChatMessage {
  return { id: newId(), type, content, reasoningContent: "", createdAt };
}
