import { randomBytes } from "node:crypto";
import type { TurnIds } from "./answer-format.js";
import { decodeIdPayload, encodeIdPayload } from "./id-payload.js";

/**
 * What a response id of the Responses door stands for: the Coze conversation and chat of a bot or
 * chatflow turn, as the service handed them out (`{cozeId}.{tag}`, bound to the API key), or
 * `""` for both when the turn was a workflow run, which has no conversation.
 */
export type ResponseRef = TurnIds;

/** The kinds of output item the door writes, by id prefix (OpenAI's). */
export type ItemKind = "msg" | "rs" | "fc";

const prefix = "resp_";
const itemPrefixes: readonly string[] = ["msg_", "rs_", "fc_"];

/**
 * A response id: `resp_` + base64url of the JSON text `[conversationId, chatId, nonce]`. The
 * gateway stores nothing, so the id carries the conversation that `previous_response_id`
 * continues, like the tool call ids do (issue #4 decision 2); the service checks the key's tag
 * when the id comes back. The nonce keeps ids apart when two responses answer one Coze chat (a
 * tool call and the answer after its outputs).
 */
export function encodeResponseId(ref: ResponseRef, nonce: string = newNonce()): string {
  return prefix + encodeIdPayload([ref.conversationId, ref.chatId, nonce]);
}

/**
 * The id of output item `index` of response `responseId`: `msg_`, `rs_` or `fc_`, the
 * response's payload, `.` and the index. An `item_reference` to it leads back to the response's
 * conversation ({@link decodeItemId}).
 */
export function itemIdOf(kind: ItemKind, responseId: string, index: number): string {
  return `${kind}_${responseId.slice(prefix.length)}.${index}`;
}

/**
 * Reads an id made by {@link encodeResponseId}.
 *
 * @returns `undefined` for anything else: another prefix, bad base64url, not a JSON array of
 *   a conversation and chat id (both present or both empty) and a non-empty nonce. Never throws.
 */
export function decodeResponseId(id: string): ResponseRef | undefined {
  if (!id.startsWith(prefix)) return undefined;
  return decodePayload(id.slice(prefix.length));
}

/** Reads an output item id made by {@link itemIdOf}; `undefined` for anything else. */
export function decodeItemId(id: string): ResponseRef | undefined {
  const p = itemPrefixes.find((x) => id.startsWith(x));
  const dot = id.lastIndexOf(".");
  if (p === undefined || dot === -1 || !/^\d{1,6}$/.test(id.slice(dot + 1))) return undefined;
  return decodePayload(id.slice(p.length, dot));
}

function decodePayload(payload: string): ResponseRef | undefined {
  const value = decodeIdPayload(payload);
  if (value === undefined) return undefined;
  const [conversationId, chatId, nonce] = value;
  if (nonce === "" || (conversationId === "") !== (chatId === "")) return undefined;
  return { conversationId, chatId };
}

/** 72 random bits, base64url. */
function newNonce(): string {
  return randomBytes(9).toString("base64url");
}
