import type { JsonObject } from "@bufbuild/protobuf";
import { joinText } from "./chat-request.js";
import { invalidValue } from "./json-checks.js";
import type { OpenAiError } from "./openai-error.js";
import type { TextPart } from "./parse-messages.js";
import type { ChatCompletionRequest } from "./parse-request.js";

/**
 * The text of the last user message, for a workflow's input or an interrupt's answer.
 *
 * @throws OpenAiError 400 when there is no user message, or it holds an image (a workflow takes
 *   text here; files go in `parameters`).
 */
export function lastUserText(req: ChatCompletionRequest): string {
  const messages = req.messages;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m?.role !== "user") continue;
    if (typeof m.content === "string") return m.content;
    const image = m.content.findIndex((p) => p.type !== "text");
    if (image !== -1) {
      throw invalidValue(
        `messages[${i}].content[${image}]`,
        "a workflow model takes text only here; pass files in `parameters`.",
      );
    }
    return joinText(m.content as TextPart[]);
  }
  throw noUserMessage();
}

function noUserMessage(): OpenAiError {
  return invalidValue("messages", "a workflow model needs a user message (or `parameters`).");
}

/**
 * The parameters of a workflow run (issue #4 "Workflows"): the `parameters` extension field when
 * given, else `{[inputField]: <last user text>}`, with `inputField` from the route (`input` by
 * default).
 */
export function workflowParameters(req: ChatCompletionRequest, inputField: string): JsonObject {
  return req.parameters ?? { [inputField]: lastUserText(req) };
}

/** The `ext` of a run: the caller's `user` as Coze's `user_id`, when given. */
export function workflowExt(req: ChatCompletionRequest): Record<string, string> {
  return req.user === undefined ? {} : { user_id: req.user };
}

/**
 * The content a workflow output becomes (issue #4 "Workflows"): an object with exactly one
 * string field gives that string; anything else gives the output's JSON text exactly as the
 * workflow produced it, so it is never broken or re-quoted JSON. An output that is not JSON at
 * all is passed through as text.
 *
 * @param json the output JSON text (`output_json`)
 * @param value the parsed output (`output`, a `google.protobuf.Value`), when it parsed
 */
export function outputContent(json: string | undefined, value: unknown): string {
  const single = singleString(value);
  return single ?? json ?? "";
}

/** Reads `{"k": "text"}` out of a `google.protobuf.Value` message, defensively. */
function singleString(value: unknown): string | undefined {
  const kind = (value as { kind?: { case?: string; value?: unknown } } | undefined)?.kind;
  if (kind?.case !== "structValue") return undefined;
  const fields = (kind.value as { fields?: Record<string, unknown> } | undefined)?.fields;
  if (!fields) return undefined;
  let only: unknown;
  let count = 0;
  for (const key in fields) {
    if (++count > 1) return undefined;
    only = fields[key];
  }
  const inner = (only as { kind?: { case?: string; value?: unknown } } | undefined)?.kind;
  return count === 1 && inner?.case === "stringValue" && typeof inner.value === "string"
    ? inner.value
    : undefined;
}
