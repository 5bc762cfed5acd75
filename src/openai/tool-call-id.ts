/** What an OpenAI tool call id returned by the shim stands for. */
export interface ToolCallRef {
  conversationId: string;
  chatId: string;
  /** Coze's own id of the tool call. */
  toolCallId: string;
}

const prefix = "call_";

/**
 * The OpenAI `tool_calls[].id` for a Coze tool call: `call_` + base64url of the JSON text
 * `[conversationId, chatId, cozeToolCallId]`. Issue #4 decision 2: the client's `role: "tool"`
 * follow-up must reach the same Coze chat on any replica, so the id carries the whole
 * reference and no server state is needed.
 */
export function encodeToolCallId(ref: ToolCallRef): string {
  const json = JSON.stringify([ref.conversationId, ref.chatId, ref.toolCallId]);
  return prefix + Buffer.from(json, "utf8").toString("base64url");
}

const base64url = /^[A-Za-z0-9_-]+$/;

/**
 * Reads an id made by {@link encodeToolCallId}.
 *
 * @returns `undefined` for anything else: another prefix, bad base64url, not a JSON array of
 *   three non-empty strings. Never throws.
 */
export function decodeToolCallId(id: string): ToolCallRef | undefined {
  if (!id.startsWith(prefix) || id.length > 1024) return undefined;
  const payload = id.slice(prefix.length);
  if (!base64url.test(payload)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length !== 3) return undefined;
  const [conversationId, chatId, toolCallId] = value as unknown[];
  if (!nonEmpty(conversationId) || !nonEmpty(chatId) || !nonEmpty(toolCallId)) return undefined;
  return { conversationId, chatId, toolCallId };
}

function nonEmpty(v: unknown): v is string {
  return typeof v === "string" && v !== "";
}
