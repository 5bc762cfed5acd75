import OpenAI from "openai";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
} from "openai/resources/chat/completions";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../src/config/index.js";
import { startDemo } from "../src/demo.js";
import { usageFor } from "../src/emulator/chat-model.js";
import { catalog } from "../src/emulator/index.js";
import { runUsage } from "../src/emulator/workflow-model.js";
import { startGateway } from "../src/gateway.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";
import { cozeIdOf, handed } from "./support/handles.js";

const limitedKey = "limited-key-0123456789abcdef";
const wf = {
  echo: `workflow:${catalog.workflows.echo}`,
  async: `workflow-async:${catalog.workflows.slowAsync}`,
  interrupt: `workflow:${catalog.workflows.interrupt}`,
  chatflow: `chatflow:${catalog.workflows.chatflow}`,
};
// A 1×1 PNG.
const png =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAghDmWQAAAABJRU5ErkJggg==";

let fx: GatewayFixture;
let client: OpenAI;
beforeAll(async () => {
  fx = await startGatewayFixture({
    apiKeys: [
      {
        name: "limited",
        sha256: hashApiKey(limitedKey),
        models: ["workflow:*"],
        rawCozeIds: false,
      },
    ],
  });
  client = new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: fx.key, maxRetries: 0 });
});
afterAll(async () => {
  await fx?.close();
});
beforeEach(() => fx.demo.emulator.reset());
afterEach(async () => {
  await expect.poll(() => fx.demo.emulator.stats().openStreams).toBe(0);
});

type Extra = Record<string, unknown>;
/** A request with extension fields, which the SDK sends through unchanged. */
const chat = (params: ChatCompletionCreateParamsNonStreaming & Extra) =>
  client.chat.completions.create(params);
const stream = (params: Omit<ChatCompletionCreateParamsStreaming, "stream"> & Extra) =>
  client.chat.completions.create({
    ...params,
    stream: true,
  } as ChatCompletionCreateParamsStreaming);
const user = (content: string) => ({ role: "user" as const, content });
const extra = (c: ChatCompletion | ChatCompletionChunk) => c as unknown as Extra;

/** Reads a whole stream and checks the invariants every stream must keep. */
async function collect(s: AsyncIterable<ChatCompletionChunk>) {
  const chunks: ChatCompletionChunk[] = [];
  for await (const c of s) chunks.push(c);
  const first = chunks[0] as ChatCompletionChunk;
  for (const c of chunks) {
    expect([c.id, c.model, c.created, c.object]).toEqual([
      first.id,
      first.model,
      first.created,
      "chat.completion.chunk",
    ]);
  }
  expect(first.choices[0]?.delta.role).toBe("assistant");
  const withChoice = chunks.filter((c) => c.choices.length > 0);
  const finishes = withChoice.filter((c) => c.choices[0]?.finish_reason);
  expect(finishes).toHaveLength(1);
  expect(withChoice.at(-1)).toBe(finishes[0]);
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
  const reasoning = chunks
    .map((c) => (c.choices[0]?.delta as Extra | undefined)?.reasoning_content ?? "")
    .join("");
  const contentChunks = chunks.filter((c) => c.choices[0]?.delta.content).length;
  return { chunks, text, reasoning, contentChunks, finish: finishes[0] as ChatCompletionChunk };
}

describe("bot turns through the OpenAI SDK", () => {
  it("answers a non-stream turn with the echo, the emulator's usage and the conversation id", async () => {
    const { data, response } = await chat({
      model: "coze-echo",
      messages: [user("hello")],
    }).withResponse();
    expect(data.object).toBe("chat.completion");
    expect(data.model).toBe("coze-echo");
    expect(data.choices[0]?.message).toMatchObject({
      role: "assistant",
      content: "You said: hello",
    });
    expect(data.choices[0]?.finish_reason).toBe("stop");
    const u = usageFor("hello".length, "You said: hello".length);
    expect(data.usage).toEqual({
      prompt_tokens: u.input_count,
      completion_tokens: u.output_count,
      total_tokens: u.token_count,
    });
    const conversation = response.headers.get("x-coze-conversation-id");
    expect(conversation).toMatch(handed);
    expect(extra(data).conversation_id).toBe(conversation);
    // The channel that served the turn, as Connect callers get it.
    expect(response.headers.get("x-gateway-channel")).toBe("demo");
  });

  it("streams a turn: role first, one id/model/created, several deltas, stop, usage when asked", async () => {
    const { data: s, response } = await stream({
      model: "coze-echo",
      messages: [user("one two three four")],
      stream_options: { include_usage: true },
    }).withResponse();
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(response.headers.get("x-coze-conversation-id")).toMatch(handed);
    expect(response.headers.get("x-gateway-channel")).toBe("demo");
    const { chunks, text, contentChunks, finish } = await collect(s);
    expect(text).toBe("You said: one two three four");
    expect(contentChunks).toBeGreaterThan(1);
    expect(finish.choices[0]?.finish_reason).toBe("stop");
    expect(extra(finish).conversation_id).toBe(response.headers.get("x-coze-conversation-id"));
    const last = chunks.at(-1) as ChatCompletionChunk;
    expect(last.choices).toEqual([]);
    const u = usageFor("one two three four".length, text.length);
    expect(last.usage).toEqual({
      prompt_tokens: u.input_count,
      completion_tokens: u.output_count,
      total_tokens: u.token_count,
    });
  });

  it("sends no usage chunk unless stream_options.include_usage asks for it", async () => {
    const { chunks } = await collect(await stream({ model: "coze-echo", messages: [user("x")] }));
    expect(chunks.every((c) => c.usage === undefined || c.usage === null)).toBe(true);
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe("stop");
  });

  it("carries reasoning_content in deltas and in the message, apart from the answer", async () => {
    const reasoning = 'The user wrote "why". I will repeat it back to them.';
    const r = await chat({ model: "coze-reasoning", messages: [user("why")] });
    expect(r.choices[0]?.message.content).toBe("You said: why");
    expect((r.choices[0]?.message as unknown as Extra | undefined)?.reasoning_content).toBe(
      reasoning,
    );
    const s = await collect(await stream({ model: "coze-reasoning", messages: [user("why")] }));
    expect(s.reasoning).toBe(reasoning);
    expect(s.text).toBe("You said: why");
  });

  it("folds system messages into the first user turn and keeps the history in order", async () => {
    const r = await chat({
      model: "coze-echo",
      messages: [
        { role: "system", content: "Be brief." },
        user("hi"),
        { role: "assistant", content: "You said: hi" },
        { role: "developer", content: "Be kind." },
        user("!received"),
      ],
    });
    const received = JSON.parse(r.choices[0]?.message.content ?? "");
    expect(received.messages.map((m: Extra) => [m.role, m.content])).toEqual([
      ["user", "Be brief.\n\nBe kind.\n\nhi"],
      ["assistant", "You said: hi"],
      ["user", "!received"],
    ]);
  });

  it("sends only the last 100 user and assistant messages, the system text folded into the first", async () => {
    const history = Array.from({ length: 60 }, (_, i) => [
      user(`q${i}`),
      { role: "assistant" as const, content: `a${i}` },
    ]).flat();
    const r = await chat({
      model: "coze-echo",
      messages: [{ role: "system", content: "Rules." }, ...history, user("!received")],
    });
    const received = JSON.parse(r.choices[0]?.message.content ?? "").messages as Extra[];
    expect(received).toHaveLength(100);
    expect(received[0]).toMatchObject({ role: "assistant", content: "a10" });
    expect(received[1]).toMatchObject({ role: "user", content: "Rules.\n\nq11" });
    expect(received.at(-1)).toMatchObject({ role: "user", content: "!received" });
  });

  it("sends Coze a user id derived from the key and `user`, never `user` itself", async () => {
    const idOf = async (u?: string) => {
      const r = await chat({ model: "coze-echo", messages: [user("!received")], user: u });
      return JSON.parse(r.choices[0]?.message.content ?? "").user_id;
    };
    const alice = await idOf("alice");
    expect(alice).toMatch(/^gw_[A-Za-z0-9_-]{22}$/);
    expect(await idOf("alice")).toBe(alice);
    const derived = await idOf();
    expect(derived).toMatch(/^gw_[A-Za-z0-9_-]{22}$/);
    expect(derived).not.toBe(alice);
    expect(await idOf()).toBe(derived);
  });

  it("sends an http(s) image by URL and uploads a data: URL image, referencing its file id", async () => {
    const ask = (url: string) =>
      chat({
        model: "coze-echo",
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "what is this" },
              { type: "image_url", image_url: { url, detail: "low" } },
            ],
          },
        ],
      });
    const byUrl = await ask("https://example.com/cat.png");
    expect(byUrl.choices[0]?.message.content).toBe(
      "You said: what is this [image url=https://example.com/cat.png]",
    );
    expect(fx.demo.emulator.stats().calls["files.upload"] ?? 0).toBe(0);
    const byData = await ask(`data:image/png;base64,${png}`);
    expect(byData.choices[0]?.message.content).toMatch(
      /^You said: what is this \[image file_id=\d+\]$/,
    );
    expect(fx.demo.emulator.stats().calls["files.upload"]).toBe(1);
  });

  it("round-trips a tool call: tool_calls, then the role:tool output continues the same chat", async () => {
    const first = await chat({ model: "coze-tool", messages: [user("Paris")] });
    const choice = first.choices[0];
    expect(choice?.finish_reason).toBe("tool_calls");
    expect(choice?.message.content).toBeNull();
    const call = choice?.message.tool_calls?.[0];
    expect(call?.id).toMatch(/^call_[A-Za-z0-9_-]+$/);
    expect(call?.type === "function" && call.function.name).toBe("get_weather");
    expect(call?.type === "function" && JSON.parse(call.function.arguments)).toEqual({
      location: "Paris",
    });
    const second = await chat({
      model: "coze-tool",
      messages: [
        user("Paris"),
        choice?.message as OpenAI.ChatCompletionAssistantMessageParam,
        { role: "tool", tool_call_id: call?.id ?? "", content: "sunny, 21°C" },
      ],
    });
    expect(second.choices[0]?.message.content).toBe("The tool said: sunny, 21°C");
    expect(second.choices[0]?.finish_reason).toBe("stop");
    const stats = fx.demo.emulator.stats();
    expect(stats.calls["chat.submit_tool_outputs"]).toBe(1);
    expect(stats.chatsCreated).toBe(1);
  });

  it("streams a tool call and its answer", async () => {
    const first = await collect(await stream({ model: "coze-tool", messages: [user("Oslo")] }));
    expect(first.finish.choices[0]?.finish_reason).toBe("tool_calls");
    const calls = first.chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({
      index: 0,
      type: "function",
      function: { name: "get_weather" },
    });
    const second = await collect(
      await stream({
        model: "coze-tool",
        messages: [
          user("Oslo"),
          { role: "assistant", content: null, tool_calls: [] },
          { role: "tool", tool_call_id: calls[0]?.id ?? "", content: "snow" },
        ],
      }),
    );
    expect(second.text).toBe("The tool said: snow");
  });

  it("continues a conversation from conversation_id or X-Coze-Conversation-Id without resending history", async () => {
    const { data, response } = await chat({
      model: "coze-echo",
      messages: [user("first")],
    }).withResponse();
    const conversation = response.headers.get("x-coze-conversation-id") ?? "";
    const history = [user("first"), { role: "assistant" as const, content: "You said: first" }];
    const again = await chat({
      model: "coze-echo",
      messages: [...history, user("!received")],
      conversation_id: conversation,
    }).withResponse();
    expect(again.response.headers.get("x-coze-conversation-id")).toBe(conversation);
    const seen = JSON.parse(again.data.choices[0]?.message.content ?? "").messages;
    expect(seen.map((m: Extra) => m.content)).toEqual(["first", "You said: first", "!received"]);
    const byHeader = await client.chat.completions.create(
      { model: "coze-echo", messages: [user("!received again")] },
      { headers: { "X-Coze-Conversation-Id": conversation } },
    );
    const seen2 = JSON.parse(byHeader.choices[0]?.message.content ?? "").messages;
    expect(seen2).toHaveLength(5);
    expect(seen2[0].content).toBe("first");
    expect(extra(byHeader).conversation_id).toBe(extra(data).conversation_id);
  });

  it("runs a chatflow as a chat, with the conversation header", async () => {
    const { data, response } = await chat({
      model: wf.chatflow,
      messages: [user("hi")],
    }).withResponse();
    expect(data.choices[0]?.message.content).toBe("You said: hi");
    expect(response.headers.get("x-coze-conversation-id")).toMatch(handed);
    const s = await collect(await stream({ model: wf.chatflow, messages: [user("hey")] }));
    expect(s.text).toBe("You said: hey");
  });
});

describe("workflows through the OpenAI SDK", () => {
  it("runs a workflow on the last user text and gives a single string output as the content", async () => {
    const r = await chat({ model: wf.echo, messages: [user("earlier"), user("hi")] });
    expect(r.choices[0]?.message.content).toBe("hi");
    expect(r.choices[0]?.finish_reason).toBe("stop");
    expect(extra(r).execute_id).toMatch(handed);
    const u = runUsage('{"output":"hi"}');
    expect(r.usage).toEqual({
      prompt_tokens: u.input_count,
      completion_tokens: u.output_count,
      total_tokens: u.token_count,
    });
  });

  it("takes `parameters` and gives any other output as its exact JSON text", async () => {
    const r = await chat({
      model: wf.echo,
      messages: [user("ignored")],
      parameters: { input: "a", n: 1, nested: { ok: true } },
    });
    const content = r.choices[0]?.message.content ?? "";
    expect(JSON.parse(content)).toEqual({
      output: "a",
      parameters: { input: "a", n: 1, nested: { ok: true } },
    });
  });

  it("streams a workflow: the output as content, as a non-stream completion gives it, and its execute id", async () => {
    const s = await collect(await stream({ model: wf.echo, messages: [user("hi")] }));
    // Issue 16: node messages are not the answer (SSE comments carry them), so a stream and a
    // non-stream completion of the same run give the same content.
    expect(s.text).toBe("hi");
    expect(s.finish.choices[0]?.finish_reason).toBe("stop");
    expect(extra(s.finish).execute_id).toMatch(handed);
  });

  it("runs an async workflow to its end, polling it", async () => {
    const r = await chat({
      model: wf.async,
      messages: [user("x")],
      parameters: { input: "late", polls: 3 },
    });
    expect(JSON.parse(r.choices[0]?.message.content ?? "")).toMatchObject({ output: "late" });
    const executeId = extra(r).execute_id as string;
    expect(fx.demo.emulator.stats().polls[cozeIdOf(executeId)]).toBe(3);
  });

  it("streams an async workflow: role chunk, then the output once the run ended", async () => {
    const s = await collect(
      await stream({
        model: wf.async,
        messages: [user("x")],
        parameters: { input: "late", polls: 4 },
      }),
    );
    expect(s.chunks[0]?.choices[0]?.delta).toEqual({ role: "assistant", content: "" });
    expect(s.contentChunks).toBe(1);
    expect(JSON.parse(s.text)).toMatchObject({ output: "late" });
    const executeId = extra(s.finish).execute_id as string;
    expect(fx.demo.emulator.stats().polls[cozeIdOf(executeId)]).toBe(4);
  });

  it("ends an interrupted run with the question and resumes it with the answer", async () => {
    const asked = await chat({ model: wf.interrupt, messages: [user("weather please")] });
    expect(asked.choices[0]?.message.content).toBe("Which city?");
    expect(asked.choices[0]?.finish_reason).toBe("stop");
    const interrupt = extra(asked).interrupt as {
      event_id: string;
      type: number;
      question: string;
    };
    expect(interrupt).toMatchObject({ type: 2, question: "Which city?" });
    const answered = await chat({
      model: wf.interrupt,
      messages: [
        user("weather please"),
        { role: "assistant", content: "Which city?" },
        user("Paris"),
      ],
      event_id: interrupt.event_id,
      interrupt_type: interrupt.type,
    });
    expect(answered.choices[0]?.message.content).toBe("You answered: Paris");
  });

  it("streams an interrupt and the resumed run", async () => {
    const asked = await collect(await stream({ model: wf.interrupt, messages: [user("go")] }));
    expect(asked.text).toBe("Which city?");
    const interrupt = extra(asked.finish).interrupt as { event_id: string; type: number };
    const resumed = await collect(
      await stream({
        model: wf.interrupt,
        messages: [user("Rome")],
        event_id: interrupt.event_id,
        interrupt_type: interrupt.type,
      }),
    );
    expect(resumed.text).toBe("You answered: Rome");
  });
});

describe("models through the OpenAI SDK", () => {
  it("lists the routes the key may use in the OpenAI list format", async () => {
    const page = await client.models.list();
    // The demo's routes first, with the names and descriptions discovery found for their bots.
    expect(page.data.slice(0, 3)).toEqual(
      [
        ["coze-echo", "Echo", "Repeats what you say."],
        ["coze-reasoning", "Reasoning echo", "Thinks out loud first, then repeats what you say."],
        [
          "coze-tool",
          "Weather tool",
          "Asks you to run get_weather, then answers with what the tool said.",
        ],
      ].map(([id, name, description]) => ({
        id,
        object: "model",
        created: 0,
        owned_by: "coze-gateway",
        kind: "bot",
        name,
        description,
      })),
    );
    // Then what discovery found in the demo space, marked as such.
    expect(
      page.data.slice(3).map((m) => [m.id, (m as { discovered?: boolean }).discovered]),
    ).toEqual([
      [`bot:${catalog.bots.failing}`, true],
      [`bot:${catalog.bots.slow}`, true],
      [`workflow:${catalog.workflows.echo}`, true],
      [`workflow:${catalog.workflows.slowAsync}`, true],
      [`workflow:${catalog.workflows.interrupt}`, true],
      [`workflow:${catalog.workflows.failing}`, true],
      [`workflow:${catalog.workflows.large}`, true],
      [`chatflow:${catalog.workflows.chatflow}`, true],
    ]);
    expect((await client.models.retrieve("coze-tool")).id).toBe("coze-tool");
    // A key limited to workflow:* sees the discovered workflows only.
    const limited = new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: limitedKey, maxRetries: 0 });
    expect((await limited.models.list()).data.map((m) => m.id)).toEqual(
      page.data.map((m) => m.id).filter((id) => id.startsWith("workflow:")),
    );
  });
});

describe("errors through the OpenAI SDK", () => {
  const failure = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      return e as InstanceType<typeof OpenAI.APIError>;
    }
    throw new Error("expected the call to fail");
  };

  it("gives NotFoundError for an unknown model, naming it", async () => {
    const err = await failure(chat({ model: "no-such-model", messages: [user("x")] }));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect([err.code, err.param]).toEqual(["model_not_found", "model"]);
    expect(err.message).toContain("no-such-model");
    expect(await failure(client.models.retrieve("no-such-model"))).toBeInstanceOf(
      OpenAI.NotFoundError,
    );
  });

  it("gives AuthenticationError for a wrong key and PermissionDeniedError for a model the key may not use", async () => {
    const wrong = new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: "sk-wrong", maxRetries: 0 });
    const unauth = await failure(
      wrong.chat.completions.create({ model: "coze-echo", messages: [user("x")] }),
    );
    expect(unauth).toBeInstanceOf(OpenAI.AuthenticationError);
    const limited = new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: limitedKey, maxRetries: 0 });
    const denied = await failure(
      limited.chat.completions.create({ model: "coze-echo", messages: [user("x")] }),
    );
    expect(denied).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(denied.type).toBe("permission_error");
    expect(fx.demo.emulator.stats().calls.chat ?? 0).toBe(0);
  });

  it("gives BadRequestError naming the field, for streams too", async () => {
    const err = await failure(chat({ model: "coze-echo", messages: [] }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe("messages");
    const streamed = await failure(
      stream({ model: "coze-echo", messages: [{ role: "assistant", content: "hi" }] }),
    );
    expect(streamed).toBeInstanceOf(OpenAI.BadRequestError);
    expect(streamed.param).toBe("messages[0].role");
  });

  it("gives RateLimitError with Retry-After and the Coze log id when Coze throttles", async () => {
    fx.demo.emulator.faults.inject({
      kind: "status",
      endpoint: "chat",
      status: 429,
      times: 1,
      retryAfterSeconds: 7,
    });
    const err = await failure(chat({ model: "coze-echo", messages: [user("x")] }));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.headers?.get("retry-after")).toBe("7");
    expect(err.headers?.get("x-coze-logid")).toMatch(/^\w+$/);
  });

  it("gives 503 when Coze is unavailable and 502 when the bot fails, streamed or not", async () => {
    fx.demo.emulator.faults.inject({ kind: "status", endpoint: "chat", status: 503, times: 1 });
    const down = await failure(chat({ model: "coze-echo", messages: [user("x")] }));
    expect(down).toBeInstanceOf(OpenAI.InternalServerError);
    expect(down.status).toBe(503);
    const failing = `bot:${catalog.bots.failing}`;
    const failed = await failure(chat({ model: failing, messages: [user("x")] }));
    expect([failed.status, failed.code]).toEqual([502, "upstream_error"]);
    const chunks: ChatCompletionChunk[] = [];
    const midStream = await failure(
      (async () => {
        for await (const c of await stream({ model: failing, messages: [user("x")] }))
          chunks.push(c);
      })(),
    );
    expect(midStream).toBeInstanceOf(OpenAI.APIError);
    expect(midStream.code).toBe("upstream_error");
    expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant");
    expect(chunks.some((c) => c.choices[0]?.finish_reason)).toBe(false);
  });

  it("gives 504 when Coze does not answer in time", async () => {
    const demo = await startDemo({ port: 0, deltaMs: 0, pollIntervalMs: 10 });
    const channel = demo.config.channels[0] as (typeof demo.config.channels)[number];
    demo.config.channels[0] = { ...channel, timeouts: { ...channel.timeouts, headersMs: 150 } };
    const gateway = await startGateway({ config: demo.config });
    try {
      demo.emulator.faults.inject({ kind: "latency", endpoint: "chat", ms: 1_000, times: 1 });
      const slow = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: demo.apiKey, maxRetries: 0 });
      const err = await failure(
        slow.chat.completions.create({ model: "coze-echo", messages: [user("x")] }),
      );
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      expect([err.status, err.code]).toEqual([504, "timeout"]);
    } finally {
      await gateway.close();
      await demo.close();
    }
  });
});
