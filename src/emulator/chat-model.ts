import type { TokenOwner } from "./tokens.js";

/** Chat status values on the wire ("canceled" with one "l", §4.2). */
export type ChatStatus =
  | "created"
  | "in_progress"
  | "completed"
  | "failed"
  | "requires_action"
  | "canceled";

/** A message as the bot received it; the `!received` dump lists these (§4.1). */
export interface HistoryItem {
  role: "user" | "assistant";
  type: string;
  content_type: string;
  content: string;
}

/** A message produced by a chat (answer, verbose, follow_up, function_call). */
export interface ChatMessage {
  id: string;
  type: "answer" | "verbose" | "follow_up" | "function_call";
  content: string;
  reasoningContent: string;
  createdAt: number;
}

/** One tool call of `required_action.submit_tool_outputs.tool_calls` (§4.2). */
export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** A conversation: its history feeds later chats (§4.1). */
export interface Conversation {
  id: string;
  /**
   * The app and `session_name` of the token that created it: only tokens of exactly this pair
   * see it and its chats and messages (§12.2).
   */
  owner: TokenOwner;
  sectionId: string;
  history: HistoryItem[];
  /** The chat still running (created/in_progress) in this conversation: a second one is 4016. */
  activeChatId?: string;
}

/** One chat (a bot turn) and everything it produced. */
export interface ChatRecord {
  id: string;
  conversation: Conversation;
  /** Absent for chatflow chats: their Chat objects have no `bot_id` (§5.6). */
  botId?: string;
  createdAt: number;
  completedAt?: number;
  failedAt?: number;
  status: ChatStatus;
  lastError: { code: number; msg: string };
  usage: { token_count: number; output_count: number; input_count: number };
  metaData: Record<string, unknown>;
  requiredAction?: ToolCall[];
  messages: ChatMessage[];
  autoSaveHistory: boolean;
  /** Characters the bot received (for the usage figures). */
  inputChars: number;
  /** Aborted by `/v3/chat/cancel`, a client disconnect or emulator shutdown. */
  abort: AbortController;
}

/** Terminal chat statuses: nothing more happens to the chat by itself (§4.2). */
export function isTerminal(status: ChatStatus): boolean {
  return status === "completed" || status === "failed" || status === "canceled";
}

/**
 * The Chat object (§4.2), fields in the order of the recorded stream. `last_error` is always an
 * object (`{code:0,msg:""}` when fine), as recorded.
 */
export function chatWire(chat: ChatRecord): Record<string, unknown> {
  const wire: Record<string, unknown> = { id: chat.id, conversation_id: chat.conversation.id };
  if (chat.botId !== undefined) wire.bot_id = chat.botId;
  wire.created_at = chat.createdAt;
  if (chat.completedAt !== undefined) wire.completed_at = chat.completedAt;
  if (chat.failedAt !== undefined) wire.failed_at = chat.failedAt;
  wire.last_error = { ...chat.lastError };
  wire.meta_data = { ...chat.metaData };
  wire.status = chat.status;
  if (chat.requiredAction) {
    wire.required_action = {
      type: "submit_tool_outputs",
      submit_tool_outputs: { tool_calls: chat.requiredAction },
    };
  }
  wire.usage = { ...chat.usage };
  wire.section_id = chat.conversation.sectionId;
  return wire;
}

/** A full Message object (§4.3): `conversation.message.completed` and the message list. */
export function messageWire(chat: ChatRecord, message: ChatMessage): Record<string, unknown> {
  return {
    ...messageHead(chat, message),
    content: message.content,
    content_type: "text",
    chat_id: chat.id,
    section_id: chat.conversation.sectionId,
    created_at: message.createdAt,
    updated_at: message.createdAt,
    meta_data: {},
    reasoning_content: message.reasoningContent,
  };
}

/** A `conversation.message.delta` payload: the recorded fields plus the increment (§4.5). */
export function deltaWire(
  chat: ChatRecord,
  message: ChatMessage,
  delta: { content: string; reasoning_content?: string },
): Record<string, unknown> {
  const wire: Record<string, unknown> = {
    ...messageHead(chat, message),
    content: delta.content,
    content_type: "text",
    chat_id: chat.id,
    section_id: chat.conversation.sectionId,
  };
  if (delta.reasoning_content !== undefined) wire.reasoning_content = delta.reasoning_content;
  return wire;
}

function messageHead(chat: ChatRecord, message: ChatMessage): Record<string, unknown> {
  const head: Record<string, unknown> = { id: message.id, conversation_id: chat.conversation.id };
  if (chat.botId !== undefined) head.bot_id = chat.botId;
  head.role = "assistant";
  head.type = message.type;
  return head;
}

/**
 * Splits text into at least 3 pieces (when it has 3 code points) of about 8 code points each,
 * never inside a surrogate pair.
 */
export function chunk(text: string, min = 3): string[] {
  const points = Array.from(text);
  if (points.length === 0) return [];
  const count = Math.min(points.length, Math.max(min, Math.min(32, Math.ceil(points.length / 8))));
  const pieces: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const from = Math.floor((i * points.length) / count);
    const to = Math.floor(((i + 1) * points.length) / count);
    pieces.push(points.slice(from, to).join(""));
  }
  return pieces;
}

/** Usage figures from character counts: about 4 characters a token, never zero (§4.2). */
export function usageFor(inputChars: number, outputChars: number): ChatRecord["usage"] {
  const input_count = 10 + Math.ceil(inputChars / 4);
  const output_count = Math.max(1, Math.ceil(outputChars / 4));
  return { token_count: input_count + output_count, output_count, input_count };
}
