import { invalidValue } from "./json-checks.js";
import { OpenAiError } from "./openai-error.js";
import type { OpenAiMessage, TextPart } from "./parse-messages.js";
import type { ChatCompletionRequest } from "./parse-request.js";
import type { InputItem, InputPart } from "./parse-response-input.js";
import type { ResponseRequest } from "./parse-response-request.js";
import { decodeItemId, decodeResponseId } from "./response-id.js";
import { decodeToolCallId } from "./tool-call-id.js";
import type { ErrorHook } from "./turn.js";

/** A Responses request as the turn the producers run, with the errors named its way. */
export interface ResponseTurnRequest {
  /** The turn in Chat Completions terms: the producers and the message mapping take it. */
  request: ChatCompletionRequest;
  /** Renames an error's `messages[i]…` fields to the `input[j]…` they came from. */
  rename: ErrorHook;
}

/** Where the conversation a turn continues came from, for a 404 naming that field. */
interface Source {
  param: string;
  thing: string;
}

/**
 * Maps a Responses request to the turn the Chat Completions door would run, so both doors share
 * the message mapping, the tool-call ids and the workflow input:
 *
 * - `instructions` become a system message first; messages map part for part (`input_text` and
 *   `output_text` are text, `input_image` an image by URL or Coze file id); trailing
 *   `function_call_output` items become `role: "tool"` messages, whose call ids name the Coze chat
 *   that waits for them; `function_call` and `reasoning` items are not sent (Coze holds them, or
 *   takes none).
 * - `previous_response_id` continues that response's Coze conversation, sending all of `input`.
 *   Without it, an `item_reference` to an output item of this gateway does the same, sending the
 *   items after the last such reference (the SDKs refer to stored items instead of resending
 *   them); `conversation_id` works as in Chat Completions.
 * - Workflow models take the last user text (or `parameters`): they have no conversation, so
 *   `previous_response_id` is refused and item references are skipped.
 *
 * @throws OpenAiError 404 `not_found` for a `previous_response_id` or item reference this gateway
 *   did not hand out (the service answers the same for another key's); 400 for a workflow's
 *   `previous_response_id`, or tool outputs of another conversation than it names.
 */
export function toTurnRequest(r: ResponseRequest, workflow: boolean): ResponseTurnRequest {
  const messages: OpenAiMessage[] = [];
  const origins: string[] = [];
  if (r.instructions !== undefined) {
    messages.push({ role: "system", content: r.instructions });
    origins.push("instructions");
  }
  let reference: { conversationId: string; sendFrom: number; source: Source } | undefined;
  r.input.forEach((item, i) => {
    const at = r.inputIsText ? "input" : `input[${i}]`;
    if (item.type === "item_reference") {
      const ref = decodeItemId(item.id);
      // A workflow reads only the last user text: what a reference stood for does not matter.
      if (workflow) return;
      if (ref === undefined) throw notFound(`${at}.id`, "item");
      if (ref.conversationId !== "") {
        const source = { param: `${at}.id`, thing: "item" };
        reference = { conversationId: ref.conversationId, sendFrom: messages.length, source };
      }
      return;
    }
    const message = messageOf(item);
    if (message) {
      messages.push(message);
      origins.push(at);
    }
  });

  let conversationId = r.conversationId;
  let sendFrom: number | undefined;
  let source: Source | undefined;
  if (r.previousResponseId !== undefined) {
    if (workflow) {
      throw invalidValue(
        "previous_response_id",
        "a workflow has no conversation to continue; answer an interrupt with event_id and interrupt_type.",
      );
    }
    const ref = decodeResponseId(r.previousResponseId);
    if (ref === undefined) throw notFound("previous_response_id", "response");
    if (ref.conversationId === "") {
      throw invalidValue("previous_response_id", "a workflow's response has no conversation.");
    }
    conversationId = ref.conversationId;
    sendFrom = 0;
    source = { param: "previous_response_id", thing: "response" };
  } else if (conversationId === undefined && reference !== undefined) {
    ({ conversationId, sendFrom, source } = reference);
  }

  let firstTool = messages.length;
  while (firstTool > 0 && messages[firstTool - 1]?.role === "tool") firstTool--;
  if (firstTool < messages.length) {
    const param = `${origins[firstTool]}.call_id`;
    const call = decodeToolCallId((messages[firstTool] as { tool_call_id: string }).tool_call_id);
    if (call && r.previousResponseId !== undefined && call.conversationId !== conversationId) {
      throw invalidValue(param, "belongs to another conversation than previous_response_id.");
    }
    source = { param, thing: "tool call" };
  }

  const request: ChatCompletionRequest = {
    model: r.model,
    messages,
    stream: r.stream,
    includeUsage: false,
    user: r.user,
    conversationId,
    parameters: r.parameters,
    resume: r.resume,
    sendFrom,
    metadata: r.metadata,
    jsonOutput: r.jsonOutput,
  };
  return { request, rename: (err) => renameParam(err, origins, source) };
}

function messageOf(item: InputItem): OpenAiMessage | undefined {
  switch (item.type) {
    case "message": {
      const content = typeof item.content === "string" ? item.content : item.content.map(partOf);
      return { role: item.role, content } as OpenAiMessage;
    }
    case "function_call_output": {
      const output = item.output;
      const content = typeof output === "string" ? output : (output.map(partOf) as TextPart[]);
      return { role: "tool", tool_call_id: item.call_id, content };
    }
    default:
      return undefined;
  }
}

function partOf(part: InputPart) {
  switch (part.type) {
    case "input_text":
    case "output_text":
      return { type: "text" as const, text: part.text };
    case "refusal":
      return { type: "refusal" as const, refusal: part.refusal };
    case "input_image":
      return part.image_url !== undefined
        ? { type: "image_url" as const, image_url: { url: part.image_url } }
        : { type: "image_file" as const, file_id: part.file_id ?? "" };
  }
}

/** The 404 for an id this key cannot use: the same whether it exists elsewhere or never did. */
function notFound(param: string, thing: string): OpenAiError {
  return new OpenAiError(404, {
    message: `${param}: no ${thing} with this id`,
    type: "invalid_request_error",
    code: "not_found",
    param,
  });
}

/**
 * Names the fields of an error the Responses way: `messages[k]…` becomes the input item (or
 * `instructions`) message `k` came from, `tool_call_id` its `call_id` and an image's URL its
 * `image_url`; a conversation or chat the service did not find becomes the field that named it.
 */
function renameParam(err: OpenAiError, origins: string[], source: Source | undefined): OpenAiError {
  const param = err.body.param;
  if (param === null) return err;
  if (err.status === 404 && (param === "conversation_id" || param === "chat_id") && source) {
    const renamed = notFound(source.param, source.thing);
    return new OpenAiError(404, renamed.body, { ...err.headers });
  }
  if (err.status !== 400) return err;
  let renamed: string | undefined;
  const m = /^messages\[(\d+)\](.*)$/.exec(param);
  if (param === "messages") renamed = "input";
  else if (m) {
    const rest = (m[2] ?? "")
      .replace(/^\.tool_call_id$/, ".call_id")
      .replace(/\.image_url\.url$/, ".image_url")
      .replace(/\.image_url\.file_id$/, ".file_id");
    renamed = (origins[Number(m[1])] ?? "input") + rest;
  }
  if (renamed === undefined) return err;
  let message = err.body.message.replace(`'${param}'`, `'${renamed}'`);
  if (message.startsWith(`${param}: `)) message = `${renamed}: ${message.slice(param.length + 2)}`;
  return new OpenAiError(400, { ...err.body, param: renamed, message }, { ...err.headers });
}
