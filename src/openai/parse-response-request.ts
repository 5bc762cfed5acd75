import {
  invalidType,
  invalidValue,
  isBoolean,
  isInteger,
  isNumber,
  isRecord,
  isString,
  type JsonRecord,
  optional,
} from "./json-checks.js";
import { type JsonOutput, parseTextFormat } from "./json-output.js";
import { type Extensions, parseExtensions, parseJsonObject, parseModel } from "./parse-request.js";
import { type InputItem, parseResponseInput } from "./parse-response-input.js";

/** A validated `POST /v1/responses` body: what the Responses door acts on. */
export interface ResponseRequest extends Extensions {
  model: string;
  /** `input`, a string input being one user message. */
  input: InputItem[];
  /** Whether `input` was a string (errors then name `input`, not `input[0]`). */
  inputIsText: boolean;
  /** System text, sent before the input. */
  instructions: string | undefined;
  stream: boolean;
  /** The end user; becomes the Coze user id. */
  user: string | undefined;
  /** Sent to Coze as the chat's `meta_data` (bots). */
  metadata: Record<string, string> | undefined;
  /** Continue the Coze conversation of this response. */
  previousResponseId: string | undefined;
  /** The request fields every response repeats, OpenAI's defaults where absent. */
  echo: Record<string, unknown>;
  /** The JSON answer `text.format` asks for (issue 16). */
  jsonOutput: JsonOutput | undefined;
}

/** Ignored parameters that are still type-checked, as OpenAI would. */
const numberFields = ["temperature", "top_p"];
const integerFields = ["max_output_tokens", "max_tool_calls", "top_logprobs"];
const booleanFields = ["stream", "store", "parallel_tool_calls", "background"];
const stringFields = [
  "instructions",
  "user",
  "previous_response_id",
  "safety_identifier",
  "prompt_cache_key",
  "truncation",
  "service_tier",
];
const objectFields = ["reasoning", "text", "stream_options"];
// OpenAI's limits on `metadata`.
const maxMetadataPairs = 16;
const maxKeyLength = 64;
const maxValueLength = 512;

/**
 * Parses and validates a Responses body. As for Chat Completions, sampling and output
 * parameters (`temperature`, `top_p`, `max_output_tokens`, `reasoning`, `text`, `tools`,
 * `tool_choice`, `parallel_tool_calls`, `truncation`, `include`, `store`, …) are accepted,
 * type-checked and ignored: the bot's or workflow's own settings apply. A response repeats them.
 * `text.format` is not ignored: a JSON format is asked of the bot and checked (issue 16).
 * Refused, because the gateway stores nothing: `background: true`, `conversation` (OpenAI's
 * stored conversations) and `prompt` (stored prompt templates).
 *
 * @param conversationHeader the `X-Coze-Conversation-Id` header, used when the body has no
 *   `conversation_id`.
 * @throws OpenAiError 400 naming the field.
 */
export function parseResponseRequest(
  text: string,
  conversationHeader: string | undefined,
): ResponseRequest {
  const body = parseJsonObject(text);
  const model = parseModel(body);
  const input = parseResponseInput(body.input);
  for (const f of numberFields) optional(body, f, f, "a number", isNumber);
  for (const f of integerFields) optional(body, f, f, "an integer", isInteger);
  for (const f of booleanFields) optional(body, f, f, "a boolean", isBoolean);
  for (const f of stringFields) optional(body, f, f, "a string", isString);
  for (const f of objectFields) optional(body, f, f, "an object", isRecord);
  optional(body, "include", "include", "an array", Array.isArray);
  checkTools(body);
  const metadata = parseMetadata(body.metadata);
  if (body.background === true) {
    throw invalidValue("background", "not supported: the gateway stores no responses.");
  }
  if (body.conversation !== undefined && body.conversation !== null) {
    throw invalidValue(
      "conversation",
      "not supported: the gateway keeps no OpenAI conversations; continue a response with previous_response_id.",
    );
  }
  if (body.prompt !== undefined && body.prompt !== null) {
    throw invalidValue("prompt", "not supported: the gateway stores no prompt templates.");
  }
  const extensions = parseExtensions(body, conversationHeader);
  const previousResponseId = (body.previous_response_id as string | null | undefined) || undefined;
  if (previousResponseId !== undefined && extensions.conversationId !== undefined) {
    throw invalidValue(
      body.conversation_id ? "conversation_id" : "X-Coze-Conversation-Id",
      "give either previous_response_id or a conversation id, not both.",
    );
  }
  const instructions = (body.instructions as string | null | undefined) ?? undefined;
  const user = (body.user as string | null | undefined) || undefined;
  return {
    model,
    input,
    inputIsText: typeof body.input === "string",
    instructions,
    stream: body.stream === true,
    user,
    metadata,
    previousResponseId,
    ...extensions,
    jsonOutput: parseTextFormat(body.text),
    echo: {
      instructions: instructions ?? null,
      max_output_tokens: body.max_output_tokens ?? null,
      max_tool_calls: body.max_tool_calls ?? null,
      metadata: metadata ?? {},
      parallel_tool_calls: body.parallel_tool_calls ?? true,
      previous_response_id: previousResponseId ?? null,
      reasoning: body.reasoning ?? { effort: null, summary: null },
      // Whatever `store` asked: nothing is stored (GET /v1/responses/{id} is a 404).
      store: false,
      temperature: body.temperature ?? null,
      text: body.text ?? { format: { type: "text" } },
      tool_choice: body.tool_choice ?? "auto",
      tools: body.tools ?? [],
      top_p: body.top_p ?? null,
      truncation: body.truncation ?? "disabled",
      user: user ?? null,
    },
  };
}

function checkTools(body: JsonRecord): void {
  const tools = body.tools;
  if (tools !== undefined && tools !== null) {
    if (!Array.isArray(tools)) throw invalidType("tools", "an array", tools);
    tools.forEach((t, i) => {
      if (!isRecord(t)) throw invalidType(`tools[${i}]`, "an object", t);
    });
  }
  const choice = body.tool_choice;
  if (choice !== undefined && choice !== null && !isString(choice) && !isRecord(choice)) {
    throw invalidType("tool_choice", "a string or an object", choice);
  }
}

function parseMetadata(value: unknown): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw invalidType("metadata", "an object", value);
  const keys = Object.keys(value);
  if (keys.length > maxMetadataPairs) {
    throw invalidValue("metadata", `at most ${maxMetadataPairs} pairs.`);
  }
  for (const k of keys) {
    if (k.length > maxKeyLength) {
      throw invalidValue("metadata", `keys are at most ${maxKeyLength} characters.`);
    }
    const v = value[k];
    if (typeof v !== "string") throw invalidType(`metadata.${k}`, "a string", v);
    if (v.length > maxValueLength) {
      throw invalidValue(`metadata.${k}`, `at most ${maxValueLength} characters.`);
    }
  }
  return keys.length > 0 ? (value as Record<string, string>) : undefined;
}
