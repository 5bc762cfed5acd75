import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  type ChatRequest,
  ChatStatus,
  type ChatStreamResponseSchema,
} from "../gen/cozegateway/v1/chat_pb.js";
import { RunStatus } from "../gen/cozegateway/v1/workflow_pb.js";
import {
  type Caller,
  CozeError,
  inProcessTenant,
  invalidArgument,
  type ModelInfo,
  type ServiceImpls,
} from "../service/index.js";
import { createOpenAiHandler } from "./openai-handler.js";

type StreamEvent = MessageInitShape<typeof ChatStreamResponseSchema>;
const caller: Caller = { name: "unit", models: undefined, tenant: inProcessTenant };
const unimplemented = () => {
  throw new ConnectError("not stubbed", Code.Unimplemented);
};

interface Stubs {
  chat?: (req: ChatRequest, ctx: HandlerContext) => Promise<Record<string, unknown>>;
  chatStream?: (req: unknown, ctx: HandlerContext) => AsyncIterable<StreamEvent>;
  runWorkflow?: (req: unknown, ctx: HandlerContext) => Promise<Record<string, unknown>>;
}

let server: Server | undefined;
let shutdown: AbortController;
const logs: unknown[] = [];
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
  logs.length = 0;
});

/** Serves the shim over stub services on 127.0.0.1:0, as the gateway server would call it. */
async function serve(stubs: Stubs, kind: ModelInfo["kind"] = "bot", heartbeatMs = 5_000) {
  shutdown = new AbortController();
  const services = {
    chat: { chat: stubs.chat ?? unimplemented, chatStream: stubs.chatStream ?? unimplemented },
    workflow: { runWorkflow: stubs.runWorkflow ?? unimplemented },
    model: { listModels: () => ({ models: [] }) },
  } as unknown as ServiceImpls;
  const handler = createOpenAiHandler({
    services,
    modelInfo: (model) => (model === "unknown" ? undefined : { kind, inputField: "query" }),
    bodyLimitBytes: 1024,
    heartbeatMs,
    now: () => 1_700_000_000_500,
    log: (...line) => logs.push(line),
  });
  server = createServer((req, res) => {
    void handler(req, res, caller, shutdown.signal).then((handled) => {
      if (!handled) res.writeHead(404).end();
    });
  });
  const listening = server;
  await new Promise<void>((resolve) => listening.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(listening.address() as AddressInfo).port}/v1/chat/completions`;
}

const post = (url: string, body: Record<string, unknown>) =>
  fetch(url, {
    method: "POST",
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "q" }], ...body }),
  });

function dataOf(text: string): string[] {
  return text
    .split("\n\n")
    .filter((e) => e.startsWith("data: "))
    .map((e) => e.slice(6));
}

const started: StreamEvent = {
  event: { case: "started", value: { conversationId: "11", chatId: "22" } },
};
const delta = (messageId: string, text: string, reasoning = ""): StreamEvent => ({
  event: { case: "delta", value: { messageId, text, reasoning } },
});
const completed: StreamEvent = {
  event: { case: "completed", value: { usage: { tokenCount: 9, inputCount: 4, outputCount: 5 } } },
};

describe("answers of several messages", () => {
  const answers = [
    started,
    delta("a", "First "),
    delta("a", "answer."),
    { event: { case: "message", value: { id: "a", type: "answer", content: "First answer." } } },
    { event: { case: "message", value: { id: "v", type: "verbose", content: '{"x":1}' } } },
    delta("b", "Second."),
    { event: { case: "message", value: { id: "c", type: "answer", content: "Third, whole." } } },
    { event: { case: "message", value: { id: "f", type: "follow_up", content: "More?" } } },
    completed,
  ] satisfies StreamEvent[];

  it("streams them separated by a blank line, as the non-stream answer joins them", async () => {
    const url = await serve({
      async *chatStream() {
        yield* answers;
      },
      chat: async () => ({
        conversationId: "11",
        status: ChatStatus.COMPLETED,
        answer: "First answer.\n\nSecond.\n\nThird, whole.",
      }),
    });
    const streamed = await (await post(url, { stream: true })).text();
    const chunks = dataOf(streamed);
    expect(chunks.at(-1)).toBe("[DONE]");
    const text = chunks
      .slice(0, -1)
      .map((c) => JSON.parse(c).choices[0]?.delta.content ?? "")
      .join("");
    const whole = (await (await post(url, {})).json()) as {
      choices: { message: { content: string } }[];
    };
    expect(text).toBe("First answer.\n\nSecond.\n\nThird, whole.");
    expect(whole.choices[0]?.message.content).toBe(text);
    expect(streamed).not.toContain("More?");
    expect(streamed).not.toContain('\\"x\\"');
  });

  it("does not repeat an answer whose completed message arrives after the next one's deltas", async () => {
    const url = await serve({
      async *chatStream() {
        yield started;
        yield delta("a", "One.");
        yield delta("b", "Two.");
        yield { event: { case: "message", value: { id: "a", type: "answer", content: "One." } } };
        yield { event: { case: "message", value: { id: "b", type: "answer", content: "Two." } } };
        yield completed;
      },
    });
    const chunks = dataOf(await (await post(url, { stream: true })).text()).slice(0, -1);
    const text = chunks.map((c) => JSON.parse(c).choices[0]?.delta.content ?? "").join("");
    expect(text).toBe("One.\n\nTwo.");
  });

  it("writes every chunk with the same id, model and created, in seconds", async () => {
    const url = await serve({
      async *chatStream() {
        yield* answers;
      },
    });
    const chunks = dataOf(await (await post(url, { stream: true })).text()).slice(0, -1);
    const heads = new Set(
      chunks.map((c) => JSON.stringify(JSON.parse(c), ["id", "model", "created"])),
    );
    expect(heads.size).toBe(1);
    expect(JSON.parse(chunks[0] as string)).toMatchObject({ model: "m", created: 1_700_000_000 });
  });
});

describe("stream endings", () => {
  it("never ends a turn that stopped without completed with [DONE]", async () => {
    const url = await serve({
      async *chatStream() {
        yield started;
        yield delta("a", "half");
      },
    });
    const chunks = dataOf(await (await post(url, { stream: true })).text());
    expect(chunks).not.toContain("[DONE]");
    expect(JSON.parse(chunks.at(-1) as string).error).toMatchObject({ code: "upstream_error" });
  });

  it("ends the stream at once on shutdown even when the service is blocked", async () => {
    let signal: AbortSignal | undefined;
    const url = await serve({
      async *chatStream(_req, ctx) {
        signal = ctx.signal;
        yield started;
        await new Promise(() => {});
      },
    });
    const res = await post(url, { stream: true });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
    let text = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      text += new TextDecoder().decode(r.value);
    }
    expect(signal?.aborted).toBe(true);
    expect(JSON.parse(dataOf(text).at(-1) as string).error).toMatchObject({
      message: "server is shutting down",
      type: "server_error",
      code: "unavailable",
    });
  });

  it("starts a silent stream after heartbeatMs with the role chunk, then keeps it alive", async () => {
    const url = await serve(
      {
        async *chatStream() {
          await new Promise((resolve) => setTimeout(resolve, 80));
          yield started;
          yield delta("a", "late");
          yield completed;
        },
      },
      "bot",
      20,
    );
    const text = await (await post(url, { stream: true })).text();
    expect(text.indexOf('"role":"assistant"')).toBeLessThan(text.indexOf(": keep-alive"));
    expect(text).toContain('"content":"late"');
    expect(text.match(/"role":"assistant"/g)).toHaveLength(1);
  });

  it("answers an error before the first event with its HTTP status, not a stream", async () => {
    const url = await serve({
      // biome-ignore lint/correctness/useYield: fails before its first event, like a refused turn
      async *chatStream() {
        throw new CozeError("rate_limited", "Coze rate limit", {
          step: "chat.stream",
          retryAfterMs: 3000,
          logId: "LOG1",
        });
      },
    });
    const res = await post(url, { stream: true });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("3");
    expect(res.headers.get("x-coze-logid")).toBe("LOG1");
    expect(await res.json()).toEqual({
      error: {
        message: "chat.stream: Coze rate limit reached, retry later",
        type: "rate_limit_error",
        // Coze's limit, not the gateway's own (`rate_limit_exceeded`): issue 15.
        code: "coze_rate_limited",
        param: null,
      },
    });
  });
});

describe("errors", () => {
  it("answers 500 'internal error' for an unexpected failure, logging its name only", async () => {
    const url = await serve({
      chat: async () => {
        throw new TypeError("token pat_SECRET leaked");
      },
    });
    const res = await post(url, {});
    expect(res.status).toBe(500);
    const body = await res.text();
    expect(body).not.toContain("pat_SECRET");
    expect(JSON.parse(body).error.message).toBe("internal error");
    expect(JSON.stringify(logs)).not.toContain("pat_SECRET");
    expect(JSON.stringify(logs)).toContain("TypeError");
  });

  it("renames the service's field names to the OpenAI request's", async () => {
    const url = await serve({
      chat: async () => {
        throw invalidArgument("messages[1].parts[0].image.url", "must be an http(s) URL");
      },
    });
    const res = await post(url, {
      messages: [
        { role: "user", content: "a" },
        { role: "assistant", content: null, tool_calls: [{}] },
        { role: "user", content: [{ type: "image_url", image_url: { url: "https://x/y" } }] },
      ],
    });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { param: string; message: string } };
    expect(error.param).toBe("messages[2].content[0].image_url.url");
    expect(error.message).toBe("messages[2].content[0].image_url.url: must be an http(s) URL");
  });
});

describe("workflows", () => {
  it("sends the last user text under the route's input field and shows a single string output", async () => {
    let parameters: unknown;
    const url = await serve(
      {
        runWorkflow: async (req) => {
          parameters = (req as { parameters: unknown }).parameters;
          return {
            executeId: "5",
            status: RunStatus.SUCCEEDED,
            outputJson: '{"answer":"forty-two"}',
            output: {
              kind: {
                case: "structValue",
                value: {
                  fields: { answer: { kind: { case: "stringValue", value: "forty-two" } } },
                },
              },
            },
          };
        },
      },
      "workflow",
    );
    const res = (await (await post(url, {})).json()) as {
      choices: { message: { content: string } }[];
      execute_id: string;
    };
    expect(parameters).toEqual({ query: "q" });
    expect(res.choices[0]?.message.content).toBe("forty-two");
    expect(res.execute_id).toBe("5");
  });
});
