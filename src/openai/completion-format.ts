import type { AnswerFormat, FinishReason } from "./answer-format.js";
import { errorJson } from "./openai-error.js";

/** The fields every chunk of one completion repeats (issue #4: same id, `model`, `created`). */
export interface CompletionMeta {
  id: string;
  model: string;
  /** Unix seconds. */
  created: number;
}

/** OpenAI's usage object. */
export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** An OpenAI tool call as it appears in a message. */
export interface OpenAiToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** The assistant message of a non-stream completion. */
export interface CompletionMessage {
  /** `null` only beside tool calls, as at OpenAI. */
  content: string | null;
  /** Reasoning of reasoning models (the DeepSeek-style field most front-ends read). */
  reasoning_content?: string;
  tool_calls?: OpenAiToolCall[];
}

/** Top-level extension fields of a completion or its finish chunk (issue #4 decision 3). */
export type CompletionExtras = Record<string, unknown>;

/** Maps the contract's usage to OpenAI's; `undefined` when the service reported none. */
export function usageOf(
  u: { tokenCount?: number; inputCount?: number; outputCount?: number } | undefined,
): OpenAiUsage | undefined {
  if (!u) return undefined;
  return {
    prompt_tokens: u.inputCount ?? 0,
    completion_tokens: u.outputCount ?? 0,
    total_tokens: u.tokenCount ?? 0,
  };
}

const noUsage: OpenAiUsage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

/** The extension fields as JSON members after a comma (`,"a":1,"b":"x"`), or `""` for none. */
function extrasJson(extras: CompletionExtras): string {
  const json = JSON.stringify(extras);
  return json === "{}" ? "" : `,${json.slice(1, -1)}`;
}

/** A non-stream `chat.completion` object, extension fields at its top level, as JSON text. */
export function completionJson(
  meta: CompletionMeta,
  message: CompletionMessage,
  finishReason: FinishReason,
  usage: OpenAiUsage | undefined,
  extras: CompletionExtras,
): string {
  return JSON.stringify({
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          refusal: null,
          content: message.content,
          reasoning_content: message.reasoning_content,
          tool_calls: message.tool_calls,
        },
        logprobs: null,
        finish_reason: finishReason,
      },
    ],
    usage: usage ?? noUsage,
    ...extras,
  });
}

/** Writers of the SSE events of one streamed completion. */
export interface ChunkFormat {
  /** The first chunk: `delta: {role: "assistant", content: ""}`, extension fields at its top level. */
  role(extras?: CompletionExtras): string;
  /** A content delta. */
  content(text: string): string;
  /** A delta with reasoning and/or content. */
  delta(content: string, reasoning: string): string;
  /** A delta carrying tool calls (each with its `index`). */
  toolCalls(calls: readonly OpenAiToolCall[]): string;
  /** The chunk with the finish reason, extension fields at its top level. */
  finish(reason: "stop" | "tool_calls", extras: CompletionExtras): string;
  /** The final usage chunk of `stream_options.include_usage` (`choices: []`). */
  usage(usage: OpenAiUsage | undefined): string;
}

/**
 * Creates the chunk writers of one completion. The part every chunk repeats (id, object,
 * created, model) is serialized once; each chunk then costs one string concatenation and the
 * JSON of its own delta (the benchmark-sensitive path, issue #4 "keep the hot path lean").
 * Every returned string is a whole SSE event: `data: {json}\n\n`.
 */
export function createChunkFormat(meta: CompletionMeta): ChunkFormat {
  const head = `data: {"id":${JSON.stringify(meta.id)},"object":"chat.completion.chunk","created":${meta.created},"model":${JSON.stringify(meta.model)},"choices":[`;
  const open = `${head}{"index":0,"delta":`;
  const close = `,"logprobs":null,"finish_reason":null}]}\n\n`;
  return {
    role: (extras = {}) =>
      `${open}{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]${extrasJson(extras)}}\n\n`,
    content: (text) => `${open}{"content":${JSON.stringify(text)}}${close}`,
    delta(content, reasoning) {
      const r = `"reasoning_content":${JSON.stringify(reasoning)}`;
      return content === ""
        ? `${open}{${r}}${close}`
        : `${open}{"content":${JSON.stringify(content)},${r}}${close}`;
    },
    toolCalls: (calls) =>
      `${open}${JSON.stringify({ tool_calls: calls.map((c, index) => ({ index, ...c })) })}${close}`,
    finish: (reason, extras) =>
      `${open}{},"logprobs":null,"finish_reason":"${reason}"}]${extrasJson(extras)}}\n\n`,
    usage(usage) {
      const u = usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
      return `${head}],"usage":${JSON.stringify(u)}}\n\n`;
    },
  };
}

/**
 * The Chat Completions door's answers: a `chat.completion` object, or chunks from the role chunk
 * to the finish chunk, the usage chunk when `stream_options.include_usage` asked for it, and
 * `data: [DONE]`. A stream that fails after it started ends with `data: {"error": …}` and no
 * `[DONE]` (issue #4 decision 7).
 */
export function chatCompletionFormat(meta: CompletionMeta, includeUsage: boolean): AnswerFormat {
  return {
    unary: (message, finish, usage, extras) => completionJson(meta, message, finish, usage, extras),
    stream() {
      const fmt = createChunkFormat(meta);
      let announced: CompletionExtras = {};
      return {
        identify() {},
        announce(extras) {
          announced = extras;
        },
        start: () => fmt.role(announced),
        content: fmt.content,
        delta: fmt.delta,
        toolCalls: fmt.toolCalls,
        finish: (reason, extras, usage) =>
          `${fmt.finish(reason, extras)}${includeUsage ? fmt.usage(usage) : ""}data: [DONE]\n\n`,
        fail: (err) => `data: ${errorJson(err)}\n\n`,
      };
    },
  };
}
