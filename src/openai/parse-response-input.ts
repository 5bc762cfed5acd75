import {
  invalidType,
  invalidValue,
  isRecord,
  type JsonRecord,
  missing,
  unsupported,
} from "./json-checks.js";

/** A content part of a Responses input message. */
export type InputPart =
  | { type: "input_text" | "output_text"; text: string }
  | { type: "refusal"; refusal: string }
  | { type: "input_image"; image_url?: string; file_id?: string };

/** A message role of the Responses API (`developer` is a system message). */
export type InputRole = "user" | "assistant" | "system" | "developer";

/** One validated item of a Responses `input`. */
export type InputItem =
  | { type: "message"; role: InputRole; content: string | InputPart[] }
  | { type: "function_call"; call_id: string; name: string; arguments: string }
  | { type: "function_call_output"; call_id: string; output: string | InputPart[] }
  | { type: "item_reference"; id: string }
  | { type: "reasoning" };

const roles: readonly InputRole[] = ["user", "assistant", "system", "developer"];
const itemTypes = [
  "message",
  "function_call",
  "function_call_output",
  "item_reference",
  "reasoning",
] as const;

/** The part types each role may send (anything else is a 400, as in Chat Completions). */
const partTypes: Record<InputRole | "function_call_output", readonly string[]> = {
  user: ["input_text", "input_image"],
  system: ["input_text"],
  developer: ["input_text"],
  assistant: ["output_text", "input_text", "refusal"],
  function_call_output: ["input_text"],
};

const details = ["auto", "low", "high", "original"];

/**
 * Validates a Responses `input` (a string, or an array of items) and returns it as items, a
 * string becoming one user message. Errors name the field the way OpenAI does: `input`,
 * `input[2].role`, `input[0].content[1].image_url`, `input[3].call_id`.
 *
 * Items: messages (`type: "message"` or none) with role `user`, `assistant`, `system` or
 * `developer` and content a string or parts (`input_text`, `input_image` by `image_url` or
 * `file_id`; `output_text` and `refusal` in assistant messages); `function_call`,
 * `function_call_output` (output a string or `input_text` parts), `item_reference` (`type` may
 * be left out) and `reasoning` items.
 *
 * @throws OpenAiError 400 for a missing or empty input, an item that is not an object, an
 *   unsupported item type, role or content part, or a missing or mistyped field.
 */
export function parseResponseInput(value: unknown): InputItem[] {
  if (value === undefined || value === null) throw missing("input");
  if (typeof value === "string") return [{ type: "message", role: "user", content: value }];
  if (!Array.isArray(value)) throw invalidType("input", "a string or an array", value);
  if (value.length === 0) {
    throw invalidValue("input", "empty array. Expected a string or at least one item.");
  }
  return value.map((item, i) => parseItem(item, `input[${i}]`));
}

function parseItem(item: unknown, at: string): InputItem {
  if (!isRecord(item)) throw invalidType(at, "an object", item);
  let type = item.type;
  if (type === undefined || type === null) {
    // EasyInputMessage has no type; neither need an item reference.
    type = item.role === undefined && typeof item.id === "string" ? "item_reference" : "message";
  }
  if (typeof type !== "string") throw invalidType(`${at}.type`, "a string", type);
  switch (type) {
    case "message":
      return parseMessage(item, at);
    case "function_call":
      return {
        type,
        call_id: requireString(item, "call_id", at),
        name: requireString(item, "name", at),
        arguments: requireString(item, "arguments", at),
      };
    case "function_call_output": {
      const call_id = requireString(item, "call_id", at);
      const output = item.output;
      if (output === undefined || output === null) throw missing(`${at}.output`);
      if (typeof output === "string") return { type, call_id, output };
      return { type, call_id, output: parseParts(output, `${at}.output`, partTypes[type]) };
    }
    case "item_reference":
      return { type, id: requireString(item, "id", at) };
    case "reasoning":
      return { type };
    default:
      throw unsupported(`${at}.type`, type, itemTypes);
  }
}

function parseMessage(item: JsonRecord, at: string): InputItem {
  const role = item.role;
  if (role === undefined || role === null) throw missing(`${at}.role`);
  if (typeof role !== "string") throw invalidType(`${at}.role`, "a string", role);
  if (!(roles as readonly string[]).includes(role)) throw unsupported(`${at}.role`, role, roles);
  const r = role as InputRole;
  const content = item.content;
  if (content === undefined || content === null) throw missing(`${at}.content`);
  if (typeof content === "string") return { type: "message", role: r, content };
  return { type: "message", role: r, content: parseParts(content, `${at}.content`, partTypes[r]) };
}

function parseParts(value: unknown, at: string, allowed: readonly string[]): InputPart[] {
  if (!Array.isArray(value)) throw invalidType(at, "one of a string or array of objects", value);
  return value.map((part, p) => parsePart(part, `${at}[${p}]`, allowed));
}

function parsePart(part: unknown, at: string, allowed: readonly string[]): InputPart {
  if (!isRecord(part)) throw invalidType(at, "an object", part);
  const type = part.type;
  if (type === undefined || type === null) throw missing(`${at}.type`);
  if (typeof type !== "string") throw invalidType(`${at}.type`, "a string", type);
  if (!allowed.includes(type)) throw unsupported(`${at}.type`, type, allowed);
  switch (type) {
    case "refusal":
      return { type, refusal: requireString(part, "refusal", at) };
    case "input_image":
      return parseImage(part, at);
    default:
      return { type: type as "input_text" | "output_text", text: requireString(part, "text", at) };
  }
}

function parseImage(part: JsonRecord, at: string): InputPart {
  const detail = part.detail;
  if (detail !== undefined && detail !== null) {
    if (typeof detail !== "string") throw invalidType(`${at}.detail`, "a string", detail);
    if (!details.includes(detail)) throw unsupported(`${at}.detail`, detail, details);
  }
  const url = optionalString(part, "image_url", at);
  const fileId = optionalString(part, "file_id", at);
  if (url !== undefined) return { type: "input_image", image_url: url };
  if (fileId !== undefined) return { type: "input_image", file_id: fileId };
  throw missing(`${at}.image_url`);
}

function requireString(o: JsonRecord, field: string, at: string): string {
  const v = o[field];
  if (v === undefined || v === null) throw missing(`${at}.${field}`);
  if (typeof v !== "string") throw invalidType(`${at}.${field}`, "a string", v);
  return v;
}

function optionalString(o: JsonRecord, field: string, at: string): string | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw invalidType(`${at}.${field}`, "a string", v);
  return v;
}
