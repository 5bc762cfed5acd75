import { compact, id, type Json, num, obj, parseUsage, str, type Usage } from "./wire.js";

/** Chat statuses (coze-api.md §4.2); `canceled` has one "l" on the wire. */
export type ChatStatus =
  | "created"
  | "in_progress"
  | "completed"
  | "failed"
  | "requires_action"
  | "canceled"
  | "unknown";

/** Message types seen on the wire (§4.3); unknown values pass through as strings. */
export type MessageType =
  | "question"
  | "answer"
  | "function_call"
  | "tool_output"
  | "tool_response"
  | "follow_up"
  | "verbose"
  | (string & {});

/** A message sent to Coze in `additional_messages` (§4.1). */
export interface EnterMessage {
  role: "user" | "assistant";
  /** Defaults to `question` upstream. */
  type?: "question" | "answer" | "function_call" | "tool_output" | "tool_response";
  /** Plain text, or for `object_string` the JSON text of the items (see {@link objectString}). */
  content: string;
  contentType: "text" | "object_string";
  metaData?: Record<string, string>;
}

/** One item of an `object_string` message (§4.1). */
export type ContentItem =
  | { type: "text"; text: string }
  | { type: "image" | "file" | "audio"; fileId?: string; fileUrl?: string };

/** Encodes items as Coze's `object_string` content: the JSON text of a snake_case array. */
export function objectString(items: readonly ContentItem[]): string {
  return JSON.stringify(
    items.map((item) =>
      item.type === "text"
        ? { type: "text", text: item.text }
        : compact({ type: item.type, file_id: item.fileId, file_url: item.fileUrl }),
    ),
  );
}

/** A tool call a bot asks the client to run (`required_action.submit_tool_outputs`). */
export interface ToolCall {
  id: string;
  /** `function` or `reply_message`. */
  type: string;
  name: string;
  /** The arguments as Coze sends them: a JSON text. */
  arguments: string;
}

/** The state of one chat (Coze's Chat object, §4.2). */
export interface ChatInfo {
  id: string;
  conversationId: string;
  botId: string | undefined;
  status: ChatStatus;
  createdAt: number | undefined;
  completedAt: number | undefined;
  failedAt: number | undefined;
  lastError: { code: number; msg: string } | undefined;
  usage: Usage | undefined;
  toolCalls: ToolCall[];
  sectionId: string | undefined;
}

/** One message as Coze returns it (§4.3). In a delta, `content` holds only the new part. */
export interface ChatMessage {
  id: string;
  conversationId: string | undefined;
  chatId: string | undefined;
  botId: string | undefined;
  role: string;
  type: MessageType;
  content: string;
  contentType: string;
  reasoningContent: string;
  sectionId: string | undefined;
  createdAt: number | undefined;
}

const statuses = new Set<ChatStatus>([
  "created",
  "in_progress",
  "completed",
  "failed",
  "requires_action",
  "canceled",
]);

/** True for the statuses after which a chat changes no more (§4.2). */
export function isTerminalStatus(status: ChatStatus): boolean {
  return (
    status === "completed" ||
    status === "failed" ||
    status === "requires_action" ||
    status === "canceled"
  );
}

/** Reads a Coze Chat object; `undefined` when it has no id (the docs' bare failure form). */
export function parseChat(v: unknown): ChatInfo | undefined {
  const c = obj(v);
  const chatId = c && id(c.id);
  if (!c || chatId === undefined) return undefined;
  const status = str(c.status) as ChatStatus | undefined;
  const lastError = obj(c.last_error);
  const code = num(lastError?.code);
  return {
    id: chatId,
    conversationId: id(c.conversation_id) ?? "",
    botId: id(c.bot_id),
    status: status && statuses.has(status) ? status : "unknown",
    createdAt: num(c.created_at),
    completedAt: num(c.completed_at),
    failedAt: num(c.failed_at),
    lastError:
      code !== undefined && code !== 0 ? { code, msg: str(lastError?.msg) ?? "" } : undefined,
    usage: parseUsage(c.usage),
    toolCalls: parseToolCalls(c.required_action),
    sectionId: id(c.section_id),
  };
}

function parseToolCalls(v: unknown): ToolCall[] {
  const calls = obj(obj(v)?.submit_tool_outputs)?.tool_calls;
  if (!Array.isArray(calls)) return [];
  const out: ToolCall[] = [];
  for (const raw of calls) {
    const call = obj(raw);
    const fn = obj(call?.function);
    const callId = id(call?.id);
    if (!call || callId === undefined) continue;
    const args = fn?.arguments;
    out.push({
      id: callId,
      type: str(call.type) ?? "function",
      name: str(fn?.name) ?? "",
      arguments: typeof args === "string" ? args : JSON.stringify(args ?? {}),
    });
  }
  return out;
}

/** Reads a Coze Message object; `undefined` when it is not one. */
export function parseMessage(v: unknown): ChatMessage | undefined {
  const m = obj(v);
  if (!m) return undefined;
  return {
    id: id(m.id) ?? "",
    conversationId: id(m.conversation_id),
    chatId: id(m.chat_id),
    botId: id(m.bot_id),
    role: str(m.role) ?? "assistant",
    type: str(m.type) ?? "answer",
    content: str(m.content) ?? "",
    contentType: str(m.content_type) ?? "text",
    reasoningContent: str(m.reasoning_content) ?? "",
    sectionId: id(m.section_id),
    createdAt: num(m.created_at),
  };
}

/** Encodes messages as Coze's `additional_messages` (§4.1). */
export function encodeMessages(messages: readonly EnterMessage[]): Json[] {
  return messages.map((m) =>
    compact({
      role: m.role,
      type: m.type,
      content: m.content,
      content_type: m.contentType,
      meta_data: m.metaData,
    }),
  );
}
