import type {
  CompletionExtras,
  CompletionMessage,
  OpenAiToolCall,
  OpenAiUsage,
} from "./completion-format.js";
import type { OpenAiError } from "./openai-error.js";

/** The Coze ids of a bot or chatflow turn, as the service handed them out (bound to the key). */
export interface TurnIds {
  conversationId: string;
  chatId: string;
}

/** Why a turn ended: an answer, or tool calls the client must run. */
export type FinishReason = "stop" | "tool_calls";

/**
 * How one door writes a turn's answer: Chat Completions (`chat.completion` and its chunks) or
 * Responses (a `response` object and its events). The turn runners and the bot and workflow
 * producers call the same core and hand their results here, so both doors answer from one
 * event loop.
 */
export interface AnswerFormat {
  /**
   * The JSON text of a non-stream answer. `ids` are the turn's Coze ids when it was a bot or
   * chatflow turn.
   */
  unary(
    message: CompletionMessage,
    finish: FinishReason,
    usage: OpenAiUsage | undefined,
    extras: CompletionExtras,
    ids?: TurnIds,
  ): string;
  /** A writer for the events of one streamed answer. */
  stream(): StreamFormat;
}

/** The writer of one streamed answer; every method returns whole SSE events (maybe none). */
export interface StreamFormat {
  /** Tells the turn's Coze ids once the service reported them (before any output). */
  identify(ids: TurnIds): void;
  /**
   * Extension fields the first events carry too (a workflow run's `execute_id`, issue 16), when
   * known before the stream starts: the role chunk, or `response.created`.
   */
  announce(extras: CompletionExtras): void;
  /** The first events, written with the response headers. */
  start(): string;
  /** Answer text. */
  content(text: string): string;
  /** Reasoning and/or answer text. */
  delta(content: string, reasoning: string): string;
  /** The tool calls the client must run (the turn then finishes with `tool_calls`). */
  toolCalls(calls: readonly OpenAiToolCall[]): string;
  /** The last events of a successful answer. */
  finish(reason: FinishReason, extras: CompletionExtras, usage: OpenAiUsage | undefined): string;
  /** The last events of an answer that failed after the stream started. */
  fail(err: OpenAiError): string;
}
