import type { AnswerFormat, StreamFormat, TurnIds } from "./answer-format.js";
import type {
  CompletionExtras,
  CompletionMessage,
  OpenAiToolCall,
  OpenAiUsage,
} from "./completion-format.js";
import type { OpenAiError } from "./openai-error.js";
import { encodeResponseId, type ItemKind, itemIdOf } from "./response-id.js";

/** What every response of one request repeats. */
export interface ResponseMeta {
  model: string;
  /** Unix seconds. */
  createdAt: number;
  /** The request fields a response echoes (`instructions`, `tools`, `metadata`, …). */
  echo: Record<string, unknown>;
  /** Clock for `completed_at`, in ms since the epoch. */
  now: () => number;
}

type Item = Record<string, unknown>;
type Status = "in_progress" | "completed" | "failed";

const noIds: TurnIds = { conversationId: "", chatId: "" };

/** OpenAI's Responses usage, from the Chat Completions one the producers report. */
function usageOf(u: OpenAiUsage | undefined) {
  if (!u) return null;
  return {
    input_tokens: u.prompt_tokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: u.completion_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: u.total_tokens,
  };
}

const outputText = (text: string) => ({ type: "output_text", annotations: [], logprobs: [], text });
const summaryText = (text: string) => ({ type: "summary_text", text });

function messageItem(id: string, status: string, text: string): Item {
  return { id, type: "message", status, role: "assistant", content: [outputText(text)] };
}

function reasoningItem(id: string, text: string): Item {
  return { id, type: "reasoning", summary: [summaryText(text)] };
}

function callItem(id: string, status: string, c: OpenAiToolCall, args: string): Item {
  return {
    id,
    type: "function_call",
    status,
    call_id: c.id,
    name: c.function.name,
    arguments: args,
  };
}

/**
 * The Responses door's answers (`POST /v1/responses`): a `response` object, or its events. Coze
 * reasoning is a `reasoning` item with the text as its summary (the part the SDKs read), the
 * answer a `message` item with one `output_text`, tool calls `function_call` items whose
 * `call_id` is the door's tool call id. The extension fields (`conversation_id`, `execute_id`,
 * `interrupt`) sit at the top level of the response, as in a chat completion.
 *
 * @param waitForIds a bot or chatflow turn: the stream's `response.created` waits until
 *   {@link StreamFormat.identify} gave the Coze ids its response id carries.
 */
export function responseFormat(meta: ResponseMeta, waitForIds: boolean): AnswerFormat {
  const response = (
    id: string,
    status: Status,
    output: Item[],
    usage: OpenAiUsage | undefined,
    extras: CompletionExtras,
    error?: OpenAiError,
  ) => ({
    id,
    object: "response",
    created_at: meta.createdAt,
    status,
    background: false,
    completed_at: status === "completed" ? Math.floor(meta.now() / 1000) : null,
    error: error ? errorObject(error) : null,
    incomplete_details: null,
    model: meta.model,
    output,
    usage: usageOf(usage),
    ...meta.echo,
    ...extras,
  });

  return {
    unary(message, _finish, usage, extras, ids) {
      const id = encodeResponseId(ids ?? noIds);
      return JSON.stringify(response(id, "completed", outputOf(id, message), usage, extras));
    },
    stream: () => responseStream(response, waitForIds),
  };
}

/** A failed response's `error`; `execute_id` too when it is about a workflow run (issue 16). */
function errorObject(error: OpenAiError) {
  const { code, message, execute_id } = error.body;
  const out = { code: code ?? "server_error", message };
  return execute_id === undefined ? out : { ...out, execute_id };
}

/** The output items of a whole answer. */
function outputOf(id: string, m: CompletionMessage): Item[] {
  const out: Item[] = [];
  const next = (kind: ItemKind) => itemIdOf(kind, id, out.length);
  if (m.reasoning_content) out.push(reasoningItem(next("rs"), m.reasoning_content));
  if (m.content !== null) out.push(messageItem(next("msg"), "completed", m.content));
  for (const c of m.tool_calls ?? []) {
    out.push(callItem(next("fc"), "completed", c, c.function.arguments));
  }
  return out;
}

type ResponseOf = (
  id: string,
  status: Status,
  output: Item[],
  usage: OpenAiUsage | undefined,
  extras: CompletionExtras,
  error?: OpenAiError,
) => Record<string, unknown>;

/**
 * The events of one streamed response, in the order OpenAI sends them: `response.created`,
 * `response.in_progress`, then per output item `response.output_item.added`, its parts and
 * deltas, their `.done` events and `response.output_item.done`, and at last `response.completed`
 * with the whole response. A failure ends with `response.failed` (the output so far, the error)
 * and an `error` event that also carries the OpenAI error object, so the openai SDK raises it as
 * it does for a failed chat completion stream. Every event has the next `sequence_number`.
 */
function responseStream(response: ResponseOf, waitForIds: boolean): StreamFormat {
  let seq = 0;
  let ids: TurnIds | undefined;
  let announced: CompletionExtras = {};
  let id = "";
  const output: Item[] = [];
  /** The message or reasoning item being written. */
  let open: { kind: "msg" | "rs"; index: number; id: string; text: string } | undefined;

  const event = (type: string, body: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...body })}\n\n`;

  /** `response.created` and `response.in_progress`, once. */
  const head = () => {
    if (id !== "") return "";
    id = encodeResponseId(ids ?? noIds);
    const r = response(id, "in_progress", [], undefined, announced);
    return (
      event("response.created", { response: r }) + event("response.in_progress", { response: r })
    );
  };

  const openItem = (kind: "msg" | "rs") => {
    let out = head() + close();
    const index = output.length;
    const itemId = itemIdOf(kind, id, index);
    open = { kind, index, id: itemId, text: "" };
    const at = { item_id: itemId, output_index: index };
    if (kind === "msg") {
      const item = {
        id: itemId,
        type: "message",
        status: "in_progress",
        role: "assistant",
        content: [],
      };
      output.push(item);
      out += event("response.output_item.added", { output_index: index, item });
      out += event("response.content_part.added", {
        ...at,
        content_index: 0,
        part: outputText(""),
      });
    } else {
      const item = { id: itemId, type: "reasoning", summary: [] };
      output.push(item);
      out += event("response.output_item.added", { output_index: index, item });
      out += event("response.reasoning_summary_part.added", {
        ...at,
        summary_index: 0,
        part: summaryText(""),
      });
    }
    return out;
  };

  /** The `.done` events of the open item. */
  const close = () => {
    if (!open) return "";
    const { kind, index, id: itemId, text } = open;
    open = undefined;
    const at = { item_id: itemId, output_index: index };
    if (kind === "msg") {
      const item = messageItem(itemId, "completed", text);
      output[index] = item;
      return (
        event("response.output_text.done", { ...at, content_index: 0, text, logprobs: [] }) +
        event("response.content_part.done", { ...at, content_index: 0, part: outputText(text) }) +
        event("response.output_item.done", { output_index: index, item })
      );
    }
    const item = reasoningItem(itemId, text);
    output[index] = item;
    return (
      event("response.reasoning_summary_text.done", { ...at, summary_index: 0, text }) +
      event("response.reasoning_summary_part.done", {
        ...at,
        summary_index: 0,
        part: summaryText(text),
      }) +
      event("response.output_item.done", { output_index: index, item })
    );
  };

  const text = (delta: string) => {
    const out = open?.kind === "msg" ? "" : openItem("msg");
    const o = open as NonNullable<typeof open>;
    o.text += delta;
    return `${out}${event("response.output_text.delta", {
      item_id: o.id,
      output_index: o.index,
      content_index: 0,
      delta,
      logprobs: [],
    })}`;
  };

  const reasoning = (delta: string) => {
    const out = open?.kind === "rs" ? "" : openItem("rs");
    const o = open as NonNullable<typeof open>;
    o.text += delta;
    return `${out}${event("response.reasoning_summary_text.delta", {
      item_id: o.id,
      output_index: o.index,
      summary_index: 0,
      delta,
    })}`;
  };

  return {
    identify(turnIds) {
      if (id === "") ids = turnIds;
    },
    announce(extras) {
      announced = extras;
    },
    start: () => (waitForIds && ids === undefined ? "" : head()),
    content: (t) => (t === "" ? "" : text(t)),
    delta: (c, r) => (r === "" ? "" : reasoning(r)) + (c === "" ? "" : text(c)),
    toolCalls(calls) {
      let out = head() + close();
      for (const c of calls) {
        const index = output.length;
        const itemId = itemIdOf("fc", id, index);
        const at = { item_id: itemId, output_index: index };
        const args = c.function.arguments;
        output.push(callItem(itemId, "completed", c, args));
        out +=
          event("response.output_item.added", {
            output_index: index,
            item: callItem(itemId, "in_progress", c, ""),
          }) +
          event("response.function_call_arguments.delta", { ...at, delta: args }) +
          event("response.function_call_arguments.done", {
            ...at,
            name: c.function.name,
            arguments: args,
          }) +
          event("response.output_item.done", { output_index: index, item: output[index] });
      }
      return out;
    },
    finish(_reason, extras, usage) {
      const out = head() + close();
      const r = response(id, "completed", output, usage, extras);
      return out + event("response.completed", { response: r });
    },
    fail(err) {
      const out = head();
      if (open) {
        const { kind, index, id: itemId, text: t } = open;
        output[index] =
          kind === "msg"
            ? messageItem(itemId, "incomplete", t)
            : { ...reasoningItem(itemId, t), status: "incomplete" };
        open = undefined;
      }
      const r = response(id, "failed", output, undefined, {}, err);
      const { code, message, param } = err.body;
      return (
        out +
        event("response.failed", { response: r }) +
        event("error", { code, message, param, error: err.body })
      );
    },
  };
}
