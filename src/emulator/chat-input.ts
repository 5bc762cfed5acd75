import type { HistoryItem } from "./chat-model.js";
import type { StoredFile } from "./files.js";
import { badRequest } from "./http-io.js";

/** A message of `additional_messages` after validation, plus what the echo bots read in it. */
export interface ReceivedMessage extends HistoryItem {
  /** Plain-text reading: the text, with `[image file_id=…]`-style notes for object_string items. */
  text: string;
}

const MESSAGE_TYPES = new Set([
  "question",
  "answer",
  "function_call",
  "tool_output",
  "tool_response",
]);
const ITEM_TYPES = new Set(["text", "image", "file", "audio"]);

/**
 * Validates `additional_messages` (§4.1 EnterMessage). `""`, `null` and absent all mean "not
 * set" (§1.6): `type` then defaults to `question` for users and `answer` for the assistant,
 * `content_type` to `text`. object_string content must be a JSON array of text/image/file/audio
 * items with at most one text item and at least one file-like item (docs rules, §4.1); a
 * `file_id` must name an uploaded file. `textOnly` is the chatflow rule (§5.6). Throws 4000.
 */
export function parseMessages(
  raw: unknown,
  files: ReadonlyMap<string, StoredFile>,
  options: { max: number; textOnly?: boolean },
): ReceivedMessage[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw badRequest("additional_messages must be an array");
  if (raw.length > options.max) {
    throw badRequest(`additional_messages holds more than ${options.max} messages`);
  }
  return raw.map((item, i) => {
    const where = `additional_messages[${i}]`;
    if (typeof item !== "object" || item === null) throw badRequest(`${where} must be an object`);
    const m = item as Record<string, unknown>;
    if (m.role !== "user" && m.role !== "assistant") {
      throw badRequest(`${where}.role must be user or assistant`);
    }
    if (typeof m.content !== "string") throw badRequest(`${where}.content must be a string`);
    const contentType = unset(m.content_type) ? "text" : m.content_type;
    if (contentType !== "text" && contentType !== "object_string") {
      throw badRequest(`${where}.content_type must be text or object_string`);
    }
    if (options.textOnly && contentType !== "text") {
      throw badRequest(`${where}.content_type must be text`);
    }
    const type = unset(m.type) ? (m.role === "user" ? "question" : "answer") : m.type;
    if (typeof type !== "string" || !MESSAGE_TYPES.has(type)) {
      throw badRequest(`${where}.type is not a message type`);
    }
    if (!unset(m.meta_data) && (typeof m.meta_data !== "object" || Array.isArray(m.meta_data))) {
      throw badRequest(`${where}.meta_data must be an object`);
    }
    const text = contentType === "text" ? m.content : describeObjectString(m.content, files, where);
    return { role: m.role, type, content_type: contentType, content: m.content, text };
  });
}

function describeObjectString(
  content: string,
  files: ReadonlyMap<string, StoredFile>,
  where: string,
): string {
  let items: unknown;
  try {
    items = JSON.parse(content);
  } catch {
    throw badRequest(`${where}.content is not a JSON array (object_string)`);
  }
  if (!Array.isArray(items) || items.length === 0) {
    throw badRequest(`${where}.content must be a non-empty JSON array (object_string)`);
  }
  let texts = 0;
  const parts = items.map((raw, j) => {
    const item = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
    if (typeof item.type !== "string" || !ITEM_TYPES.has(item.type)) {
      throw badRequest(`${where}.content[${j}].type must be text, image, file or audio`);
    }
    if (item.type === "text") {
      texts += 1;
      if (typeof item.text !== "string")
        throw badRequest(`${where}.content[${j}].text is required`);
      return item.text;
    }
    // py keeps null keys (`"file_url":null`), so null counts as absent (§4.1).
    if (!unset(item.file_id)) {
      const id = String(item.file_id);
      if (!files.has(id))
        throw badRequest(`${where}.content[${j}].file_id ${id} is not an uploaded file`);
      return `[${item.type} file_id=${id}]`;
    }
    if (!unset(item.file_url)) return `[${item.type} url=${String(item.file_url)}]`;
    throw badRequest(`${where}.content[${j}] needs file_id or file_url`);
  });
  if (texts > 1) throw badRequest(`${where}.content holds more than one text item`);
  if (texts === items.length) {
    throw badRequest(`${where}: pure text must use content_type text, not object_string`);
  }
  return parts.join(" ");
}

/**
 * An optional string-keyed map (`custom_variables`, `meta_data`, `parameters`, `ext`): `null`
 * and absent read as `{}`; anything but an object is a 4000.
 */
export function optionalMap(value: unknown, name: string): Record<string, unknown> {
  if (unset(value)) return {};
  if (typeof value !== "object" || Array.isArray(value))
    throw badRequest(`${name} must be an object`);
  return value as Record<string, unknown>;
}

/** An optional id field: `""`, `null`, `0` and absent are "not set" (§1.6). */
export function optionalId(value: unknown): string | undefined {
  if (unset(value) || value === 0) return undefined;
  if (typeof value !== "string" && typeof value !== "number") return undefined;
  return String(value);
}

/** `undefined`, `null` or `""`. */
export function unset(value: unknown): value is undefined | null | "" {
  return value === undefined || value === null || value === "";
}
