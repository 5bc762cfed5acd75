import {
  invalidType,
  invalidValue,
  isRecord,
  type JsonRecord,
  missing,
  unsupported,
} from "./json-checks.js";

/** A text content part. */
export interface TextPart {
  type: "text";
  text: string;
}

/** An image content part: an http(s) URL or a `data:` URL. */
export interface ImagePart {
  type: "image_url";
  image_url: { url: string; detail?: "auto" | "low" | "high" };
}

/**
 * An image by Coze file id. Not a Chat Completions part (`messages` never holds one): the
 * Responses door maps `input_image` with a `file_id` to it.
 */
export interface ImageFilePart {
  type: "image_file";
  file_id: string;
}

/** An assistant's refusal, kept as text. */
export interface RefusalPart {
  type: "refusal";
  refusal: string;
}

/** One validated OpenAI chat message (`developer` is a system message). */
export type OpenAiMessage =
  | { role: "system" | "developer"; content: string | TextPart[] }
  | { role: "user"; content: string | (TextPart | ImagePart | ImageFilePart)[] }
  | {
      role: "assistant";
      content?: string | (TextPart | RefusalPart)[] | null;
      tool_calls?: unknown[] | null;
    }
  | { role: "tool"; content: string | TextPart[]; tool_call_id: string };

const roles = ["system", "developer", "user", "assistant", "tool"] as const;

/** The part types each role may send (issue #4 decision 6: anything else is a 400). */
const partTypes: Record<(typeof roles)[number], readonly string[]> = {
  system: ["text"],
  developer: ["text"],
  user: ["text", "image_url"],
  assistant: ["text", "refusal"],
  tool: ["text"],
};

const details = ["auto", "low", "high"];

/**
 * Validates `messages` in place and returns it typed (no copy: the hot path allocates nothing
 * here). Errors name the field the way OpenAI does: `messages`, `messages[2].role`,
 * `messages[0].content[1].type`, `messages[0].content[1].image_url.url`.
 *
 * @throws OpenAiError 400 for a missing or empty array, a message that is not an object, an
 *   unknown role, content of the wrong type or shape, an unsupported content part, a tool
 *   message without `tool_call_id`.
 */
export function parseMessages(value: unknown): OpenAiMessage[] {
  if (value === undefined || value === null) throw missing("messages");
  if (!Array.isArray(value)) throw invalidType("messages", "an array", value);
  if (value.length === 0) {
    throw invalidValue(
      "messages",
      "empty array. Expected an array with minimum length 1, but got an empty array instead.",
    );
  }
  for (let i = 0; i < value.length; i++) checkMessage(value[i], `messages[${i}]`);
  return value as OpenAiMessage[];
}

function checkMessage(m: unknown, at: string): void {
  if (!isRecord(m)) throw invalidType(at, "an object", m);
  const role = m.role;
  if (role === undefined || role === null) throw missing(`${at}.role`);
  if (typeof role !== "string") throw invalidType(`${at}.role`, "a string", role);
  if (!(roles as readonly string[]).includes(role)) throw unsupported(`${at}.role`, role, roles);
  const r = role as (typeof roles)[number];
  if (m.name !== undefined && m.name !== null && typeof m.name !== "string") {
    throw invalidType(`${at}.name`, "a string", m.name);
  }
  const content = m.content;
  if (r === "assistant") {
    // OpenAI allows an assistant message without content when it carries tool calls.
    if (m.tool_calls !== undefined && m.tool_calls !== null && !Array.isArray(m.tool_calls)) {
      throw invalidType(`${at}.tool_calls`, "an array", m.tool_calls);
    }
    if (content === undefined || content === null) return;
  } else if (content === undefined || content === null) {
    throw missing(`${at}.content`);
  }
  if (r === "tool") {
    const id = m.tool_call_id;
    if (id === undefined || id === null) throw missing(`${at}.tool_call_id`);
    if (typeof id !== "string") throw invalidType(`${at}.tool_call_id`, "a string", id);
  }
  if (typeof content === "string") return;
  if (!Array.isArray(content)) {
    throw invalidType(`${at}.content`, "one of a string or array of objects", content);
  }
  for (let p = 0; p < content.length; p++) {
    checkPart(content[p], `${at}.content[${p}]`, partTypes[r]);
  }
}

function checkPart(part: unknown, at: string, allowed: readonly string[]): void {
  if (!isRecord(part)) throw invalidType(at, "an object", part);
  const type = part.type;
  if (type === undefined || type === null) throw missing(`${at}.type`);
  if (typeof type !== "string") throw invalidType(`${at}.type`, "a string", type);
  if (!allowed.includes(type)) throw unsupported(`${at}.type`, type, allowed);
  switch (type) {
    case "text":
      requireString(part, "text", at);
      return;
    case "refusal":
      requireString(part, "refusal", at);
      return;
    case "image_url":
      checkImage(part, at);
      return;
  }
}

function requireString(part: JsonRecord, field: string, at: string): void {
  const v = part[field];
  if (v === undefined || v === null) throw missing(`${at}.${field}`);
  if (typeof v !== "string") throw invalidType(`${at}.${field}`, "a string", v);
}

function checkImage(part: JsonRecord, at: string): void {
  const image = part.image_url;
  if (image === undefined || image === null) throw missing(`${at}.image_url`);
  if (!isRecord(image)) throw invalidType(`${at}.image_url`, "an object", image);
  requireString(image, "url", `${at}.image_url`);
  const detail = image.detail;
  if (detail !== undefined && detail !== null) {
    if (typeof detail !== "string") throw invalidType(`${at}.image_url.detail`, "a string", detail);
    if (!details.includes(detail)) throw unsupported(`${at}.image_url.detail`, detail, details);
  }
}
