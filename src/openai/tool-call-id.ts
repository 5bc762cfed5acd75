import { decodeIdPayload, encodeIdPayload } from "./id-payload.js";

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
  return prefix + encodeIdPayload([ref.conversationId, ref.chatId, ref.toolCallId]);
}

/**
 * Reads an id made by {@link encodeToolCallId}.
 *
 * @returns `undefined` for anything else: another prefix, bad base64url, not a JSON array of
 *   three non-empty strings. Never throws.
 */
export function decodeToolCallId(id: string): ToolCallRef | undefined {
  if (!id.startsWith(prefix)) return undefined;
  const value = decodeIdPayload(id.slice(prefix.length));
  if (value === undefined) return undefined;
  const [conversationId, chatId, toolCallId] = value;
  if (conversationId === "" || chatId === "" || toolCallId === "") return undefined;
  return { conversationId, chatId, toolCallId };
}
