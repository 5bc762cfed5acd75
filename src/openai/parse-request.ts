import type { JsonObject } from "@bufbuild/protobuf";
import {
  invalidType,
  invalidValue,
  isBoolean,
  isInteger,
  isNumber,
  isRecord,
  isString,
  type JsonRecord,
  missing,
  optional,
} from "./json-checks.js";
import { type JsonOutput, parseResponseFormat } from "./json-output.js";
import { badRequest } from "./openai-error.js";
import { type OpenAiMessage, parseMessages } from "./parse-messages.js";

/** A validated `POST /v1/chat/completions` body: what the shim acts on. */
export interface ChatCompletionRequest {
  model: string;
  messages: OpenAiMessage[];
  stream: boolean;
  /** `stream_options.include_usage`: a final chunk with the usage. */
  includeUsage: boolean;
  /** The end user; becomes the Coze user id. */
  user: string | undefined;
  /** Extension: continue this Coze conversation (or header `X-Coze-Conversation-Id`). */
  conversationId: string | undefined;
  /** Extension: workflow or chatflow parameters. */
  parameters: JsonObject | undefined;
  /**
   * Extension: answer this workflow interrupt with the last user message's text. A reply that
   * answers a remembered question (`interrupt-replies.ts`) also knows the run and its channel.
   */
  resume:
    | { eventId: string; interruptType: number; executeId?: string; channel?: string }
    | undefined;
  /**
   * The index of the first message Coze does not hold yet, when continuing a conversation. Unset
   * (Chat Completions): the messages after the last assistant message.
   */
  sendFrom?: number;
  /** Sent to Coze as the chat's `meta_data` (the Responses door's `metadata`). */
  metadata?: Record<string, string>;
  /** The JSON answer `response_format` (or the Responses door's `text.format`) asks for. */
  jsonOutput?: JsonOutput;
}

// A conversation id the gateway handed out (`{id}.{tag}`), or a raw Coze id for keys allowed
// raw ids; whose it is, the core decides.
const conversationIdShape = /^\d{1,32}(\.[A-Za-z0-9_-]{22})?$/;
const maxModelLength = 256;
/** Ignored parameters that are still type-checked, as OpenAI would (issue #4 decision 6). */
const numberFields = ["temperature", "top_p", "presence_penalty", "frequency_penalty"];
const integerFields = ["max_tokens", "max_completion_tokens", "seed", "top_logprobs"];

/**
 * Parses and validates a chat completion body (issue #4 decision 6). Sampling and other OpenAI
 * parameters (`temperature`, `top_p`, `max_tokens`, `stop`, `tools`, …) are accepted and
 * ignored: Coze bots and workflows carry their own settings. `response_format` is not ignored
 * (issue 16, `json-output.ts`). The common numeric ones are still
 * type-checked, so a wrong type is a 400 like at OpenAI.
 *
 * @param conversationHeader the `X-Coze-Conversation-Id` header, used when the body has no
 *   `conversation_id`.
 * @throws OpenAiError 400 naming the field: invalid JSON, a body that is not an object, a
 *   missing or empty `model` or `messages`, wrong types, `n` other than 1, unsupported content
 *   parts, malformed extension fields.
 */
export function parseChatCompletionRequest(
  text: string,
  conversationHeader: string | undefined,
): ChatCompletionRequest {
  const body = parseJsonObject(text);
  const model = parseModel(body);
  const messages = parseMessages(body.messages);

  optional(body, "stream", "stream", "a boolean", isBoolean);
  const streamOptions = body.stream_options;
  let includeUsage = false;
  if (streamOptions !== undefined && streamOptions !== null) {
    if (!isRecord(streamOptions)) throw invalidType("stream_options", "an object", streamOptions);
    optional(
      streamOptions,
      "include_usage",
      "stream_options.include_usage",
      "a boolean",
      isBoolean,
    );
    includeUsage = streamOptions.include_usage === true;
  }
  const n = body.n;
  if (n !== undefined && n !== null) {
    if (!Number.isInteger(n)) throw invalidType("n", "an integer", n);
    // One Coze turn gives one answer; several choices would need several turns.
    if (n !== 1) throw invalidValue("n", "only 1 is supported.");
  }
  for (const f of numberFields) optional(body, f, f, "a number", isNumber);
  for (const f of integerFields) optional(body, f, f, "an integer", isInteger);
  optional(body, "user", "user", "a string", isString);

  return {
    model,
    messages,
    stream: body.stream === true,
    includeUsage,
    user: (body.user as string | null | undefined) || undefined,
    ...parseExtensions(body, conversationHeader),
    jsonOutput: parseResponseFormat(body.response_format),
  };
}

/**
 * Parses a request body that must be a JSON object.
 * @throws OpenAiError 400 for invalid JSON or another JSON value.
 */
export function parseJsonObject(text: string): JsonRecord {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw badRequest(
      null,
      "We could not parse the JSON body of your request. The API expects a JSON payload.",
      "invalid_json",
    );
  }
  if (!isRecord(body)) throw invalidType("body", "an object", body);
  return body;
}

/**
 * The required `model`: a non-empty string of at most 256 characters.
 * @throws OpenAiError 400 naming `model`.
 */
export function parseModel(body: JsonRecord): string {
  const model = body.model;
  if (model === undefined || model === null) throw missing("model");
  if (typeof model !== "string") throw invalidType("model", "a string", model);
  if (model === "") throw invalidValue("model", "empty string. Expected a model name.");
  // Model names are short; a longer one would only be echoed back in the 404.
  if (model.length > maxModelLength) {
    throw invalidValue("model", `longer than ${maxModelLength} characters.`);
  }
  return model;
}

/** The extension fields both OpenAI doors take (README "Extension fields"). */
export type Extensions = Pick<ChatCompletionRequest, "conversationId" | "parameters" | "resume">;

/**
 * Reads the extension fields: `conversation_id` (or the `X-Coze-Conversation-Id` header),
 * `parameters`, and `event_id` with `interrupt_type`.
 * @throws OpenAiError 400 naming the field when one is malformed.
 */
export function parseExtensions(
  body: JsonRecord,
  conversationHeader: string | undefined,
): Extensions {
  optional(body, "conversation_id", "conversation_id", "a string", isString);
  const conversationId = (body.conversation_id as string | null | undefined) || conversationHeader;
  if (
    conversationId !== undefined &&
    conversationId !== "" &&
    !conversationIdShape.test(conversationId)
  ) {
    throw invalidValue(
      body.conversation_id ? "conversation_id" : "X-Coze-Conversation-Id",
      "expected a conversation id the gateway returned.",
    );
  }
  optional(body, "parameters", "parameters", "an object", isRecord);
  optional(body, "event_id", "event_id", "a string", isString);
  optional(body, "interrupt_type", "interrupt_type", "an integer", isInteger);
  let resume: ChatCompletionRequest["resume"];
  if (typeof body.event_id === "string" && body.event_id !== "") {
    if (typeof body.interrupt_type !== "number") throw missing("interrupt_type");
    resume = { eventId: body.event_id, interruptType: body.interrupt_type };
  }
  return {
    conversationId: conversationId || undefined,
    parameters: (body.parameters as JsonObject | null | undefined) ?? undefined,
    resume,
  };
}
