import OpenAI from "openai";
import type {
  Response,
  ResponseCreateParamsBase,
  ResponseCreateParamsNonStreaming,
  ResponseCreateParamsStreaming,
  ResponseInputItem,
  ResponseStreamEvent,
} from "openai/resources/responses/responses";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../src/config/index.js";
import { demoModels } from "../src/demo.js";
import { usageFor } from "../src/emulator/chat-model.js";
import { catalog } from "../src/emulator/index.js";
import { runUsage } from "../src/emulator/workflow-model.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";
import { handed } from "./support/handles.js";

// Issue 14: POST /v1/responses through the official openai SDK, over real sockets.
const otherKey = "other-key-0123456789abcdef";
// A 1×1 PNG.
const png =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAghDmWQAAAABJRU5ErkJggg==";
const limitedKey = "limited-key-0123456789abcdef";

let fx: GatewayFixture;
let client: OpenAI;
beforeAll(async () => {
  fx = await startGatewayFixture({
    apiKeys: [
      { name: "other", sha256: hashApiKey(otherKey), models: undefined, rawCozeIds: false },
      {
        name: "limited",
        sha256: hashApiKey(limitedKey),
        models: ["workflow:*"],
        rawCozeIds: false,
      },
    ],
  });
  client = clientFor(fx.key);
});
afterAll(async () => {
  await fx?.close();
});
beforeEach(() => fx.demo.emulator.reset());
afterEach(async () => {
  await expect.poll(() => fx.demo.emulator.stats().openStreams).toBe(0);
});

const clientFor = (apiKey: string) =>
  new OpenAI({ baseURL: `${fx.url}/v1`, apiKey, maxRetries: 0 });
type Extra = Record<string, unknown>;
/** A request with extension fields, which the SDK sends through unchanged. */
const create = (params: ResponseCreateParamsNonStreaming & Extra) =>
  client.responses.create(params);
const createStream = (params: Omit<ResponseCreateParamsStreaming, "stream"> & Extra) =>
  client.responses.create({ ...params, stream: true } as ResponseCreateParamsStreaming);
const extra = (r: Response) => r as unknown as Extra;
const user = (text: string): ResponseInputItem => ({ role: "user", content: text });
const u = (input: number, output: number) => {
  const c = usageFor(input, output);
  return { input: c.input_count, output: c.output_count, total: c.token_count };
};

/** The text of a response's message items (what the SDK's `output_text` joins). */
function textOf(r: Response): string {
  return r.output
    .flatMap((i) => (i.type === "message" ? i.content : []))
    .map((c) => (c.type === "output_text" ? c.text : ""))
    .join("");
}

/** Reads a whole event stream and checks what every Responses stream must keep. */
async function collect(s: AsyncIterable<ResponseStreamEvent>) {
  const events: ResponseStreamEvent[] = [];
  for await (const e of s) events.push(e);
  checkSequence(events);
  const deltas = events.filter((e) => e.type === "response.output_text.delta");
  const text = deltas.map((e) => e.delta).join("");
  const reasoning = events
    .map((e) => (e.type === "response.reasoning_summary_text.delta" ? e.delta : ""))
    .join("");
  return { events, text, reasoning, deltas: deltas.length, types: events.map((e) => e.type) };
}

function checkSequence(events: ResponseStreamEvent[]): void {
  expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
  expect(events.slice(0, 2).map((e) => e.type)).toEqual([
    "response.created",
    "response.in_progress",
  ]);
}

function last<T extends ResponseStreamEvent["type"]>(
  events: ResponseStreamEvent[],
  type: T,
): Extract<ResponseStreamEvent, { type: T }> {
  const found = events.findLast((e) => e.type === type);
  if (!found) throw new Error(`no ${type} event`);
  return found as Extract<ResponseStreamEvent, { type: T }>;
}

describe("bot turns through client.responses", () => {
  it("answers a string input with a message item, the usage, the conversation and the echoed request", async () => {
    const { data, response } = await client.responses
      .create({
        model: "coze-echo",
        input: "hello",
        temperature: 0.2,
        tools: [{ type: "function", name: "noop", parameters: {}, strict: false }],
        metadata: { ticket: "42" },
      })
      .withResponse();
    expect(data.id).toMatch(/^resp_[A-Za-z0-9_-]+$/);
    expect([data.object, data.model, data.status, data.error]).toEqual([
      "response",
      "coze-echo",
      "completed",
      null,
    ]);
    expect(data.output).toHaveLength(1);
    expect(data.output[0]).toMatchObject({
      type: "message",
      role: "assistant",
      status: "completed",
    });
    expect(data.output_text).toBe("You said: hello");
    const n = u("hello".length, "You said: hello".length);
    expect(data.usage).toMatchObject({
      input_tokens: n.input,
      output_tokens: n.output,
      total_tokens: n.total,
    });
    expect(data).toMatchObject({
      temperature: 0.2,
      metadata: { ticket: "42" },
      tools: [{ type: "function", name: "noop" }],
      tool_choice: "auto",
      parallel_tool_calls: true,
      previous_response_id: null,
      store: false,
    });
    expect(extra(data).conversation_id).toMatch(handed);
    expect(response.headers.get("x-coze-conversation-id")).toBe(extra(data).conversation_id);
    expect(response.headers.get("x-gateway-channel")).toBe("demo");
  });

  it("sends instructions as system text before the input, and metadata as Coze's meta_data", async () => {
    const r = await create({
      model: "coze-echo",
      instructions: "Be brief.",
      input: [
        { role: "developer", content: "Be kind." },
        { type: "message", role: "user", content: [{ type: "input_text", text: "hi" }] },
        { role: "assistant", content: "You said: hi" },
        user("!received"),
      ],
      metadata: { ticket: "42" },
    });
    const seen = JSON.parse(r.output_text);
    expect(seen.messages.map((m: Extra) => [m.role, m.content])).toEqual([
      ["user", "Be brief.\n\nBe kind.\n\nhi"],
      ["assistant", "You said: hi"],
      ["user", "!received"],
    ]);
    expect(seen.meta_data).toEqual({ ticket: "42" });
    expect(r.instructions).toBe("Be brief.");
  });

  it("sends images by URL, and by Coze file id", async () => {
    const ask = (image: { image_url: string } | { file_id: string }) =>
      create({
        model: "coze-echo",
        input: [
          {
            role: "user",
            content: [
              { type: "input_text", text: "what is this" },
              { type: "input_image", detail: "auto", ...image },
            ],
          },
        ],
      });
    expect((await ask({ image_url: "https://example.com/cat.png" })).output_text).toBe(
      "You said: what is this [image url=https://example.com/cat.png]",
    );
    // A data: URL is uploaded to Coze; the file id it got can be sent again.
    const uploaded = (await ask({ image_url: `data:image/png;base64,${png}` })).output_text;
    const fileId = /file_id=(\d+)/.exec(uploaded)?.[1] ?? "";
    expect(fileId).not.toBe("");
    expect((await ask({ file_id: fileId })).output_text).toBe(
      `You said: what is this [image file_id=${fileId}]`,
    );
    expect(fx.demo.emulator.stats().calls["files.upload"]).toBe(1);
  });

  it("streams a turn: created, in_progress, the message item's events, deltas, completed", async () => {
    const { data: s, response } = await client.responses
      .create({ model: "coze-echo", input: "one two three four", stream: true })
      .withResponse();
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const { events, text, deltas, types } = await collect(s);
    expect(text).toBe("You said: one two three four");
    expect(deltas).toBeGreaterThan(1);
    const shape = types.filter((t, i) => t !== types[i - 1]);
    expect(shape).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    const created = last(events, "response.created").response;
    const done = last(events, "response.completed").response;
    expect(done.id).toBe(created.id);
    expect(created.status).toBe("in_progress");
    expect(done.status).toBe("completed");
    expect(last(events, "response.output_text.done").text).toBe(text);
    expect(textOf(done)).toBe(text);
    const n = u("one two three four".length, text.length);
    expect(done.usage).toMatchObject({ input_tokens: n.input, output_tokens: n.output });
    expect((done as unknown as Extra).conversation_id).toBe(
      response.headers.get("x-coze-conversation-id"),
    );
  });

  it("serves the SDK's responses.stream helper: text events and finalResponse()", async () => {
    const deltas: string[] = [];
    const stream = client.responses
      .stream({ model: "coze-echo", input: "streamed" })
      .on("response.output_text.delta", (e) => deltas.push(e.delta));
    const final = await stream.finalResponse();
    expect(final.status).toBe("completed");
    expect(textOf(final)).toBe("You said: streamed");
    expect(deltas.join("")).toBe("You said: streamed");
  });

  it("gives Coze reasoning as a reasoning item before the message, streamed or not", async () => {
    const reasoning = 'The user wrote "why". I will repeat it back to them.';
    const r = await create({ model: "coze-reasoning", input: "why" });
    expect(r.output.map((i) => i.type)).toEqual(["reasoning", "message"]);
    expect(r.output[0]).toMatchObject({ summary: [{ type: "summary_text", text: reasoning }] });
    expect(r.output_text).toBe("You said: why");
    const s = await collect(
      await client.responses.create({ model: "coze-reasoning", input: "why", stream: true }),
    );
    expect(s.reasoning).toBe(reasoning);
    expect(s.text).toBe("You said: why");
    expect(last(s.events, "response.reasoning_summary_text.done").text).toBe(reasoning);
    const items = s.events.filter((e) => e.type === "response.output_item.done");
    expect(items.map((e) => [e.output_index, e.item.type])).toEqual([
      [0, "reasoning"],
      [1, "message"],
    ]);
  });

  it("continues the Coze conversation of previous_response_id, sending only the new input", async () => {
    const first = await create({ model: "coze-echo", input: "first" });
    const again = await create({
      model: "coze-echo",
      previous_response_id: first.id,
      input: "!received",
    });
    expect(JSON.parse(again.output_text).messages.map((m: Extra) => m.content)).toEqual([
      "first",
      "You said: first",
      "!received",
    ]);
    expect(extra(again).conversation_id).toBe(extra(first).conversation_id);
    expect(again.previous_response_id).toBe(first.id);
    expect(again.id).not.toBe(first.id);
  });

  it("continues a conversation from an item_reference to an earlier output, not resending it", async () => {
    const first = await create({ model: "coze-echo", input: "first" });
    const again = await create({
      model: "coze-echo",
      input: [
        user("first"),
        { type: "item_reference", id: first.output[0]?.id ?? "" },
        user("!received"),
      ],
    });
    expect(JSON.parse(again.output_text).messages.map((m: Extra) => m.content)).toEqual([
      "first",
      "You said: first",
      "!received",
    ]);
    expect(extra(again).conversation_id).toBe(extra(first).conversation_id);
  });

  it("replays a whole history without ids as a new conversation", async () => {
    const r = await create({
      model: "coze-echo",
      input: [
        user("hi"),
        {
          role: "assistant",
          content: [{ type: "output_text", text: "You said: hi", annotations: [] }],
        },
        user("!received"),
      ] as ResponseInputItem[],
    });
    expect(JSON.parse(r.output_text).messages.map((m: Extra) => [m.role, m.content])).toEqual([
      ["user", "hi"],
      ["assistant", "You said: hi"],
      ["user", "!received"],
    ]);
  });

  it("stops the Coze chat when the client goes away mid-stream", async () => {
    const s = await client.responses.create({
      model: `bot:${catalog.bots.slow}`,
      input: "take your time",
      stream: true,
    });
    for await (const e of s) if (e.type === "response.output_text.delta") break;
    await expect
      .poll(() => {
        const stats = fx.demo.emulator.stats();
        return [stats.calls["chat.cancel"] ?? 0, stats.chatsRunning];
      })
      .toEqual([1, 0]);
  });
});

describe("function calls through client.responses", () => {
  const weather = {
    type: "function" as const,
    name: "get_weather",
    parameters: { type: "object", properties: { location: { type: "string" } } },
    strict: false,
  };

  it("round-trips a function call: function_call item, then function_call_output continues the chat", async () => {
    const first = await create({ model: "coze-tool", input: "Paris", tools: [weather] });
    expect(first.status).toBe("completed");
    expect(first.output).toHaveLength(1);
    const call = first.output[0];
    if (call?.type !== "function_call") throw new Error("expected a function_call item");
    expect(call.name).toBe("get_weather");
    expect(JSON.parse(call.arguments)).toEqual({ location: "Paris" });
    expect(call.call_id).toMatch(/^call_[A-Za-z0-9_-]+$/);
    expect(call.id).toMatch(/^fc_/);
    const second = await create({
      model: "coze-tool",
      previous_response_id: first.id,
      input: [{ type: "function_call_output", call_id: call.call_id, output: "sunny, 21°C" }],
    });
    expect(second.output_text).toBe("The tool said: sunny, 21°C");
    const stats = fx.demo.emulator.stats();
    expect(stats.calls["chat.submit_tool_outputs"]).toBe(1);
    expect(stats.chatsCreated).toBe(1);
  });

  it("takes the outputs after a resent history, without previous_response_id (store: false)", async () => {
    const first = await create({ model: "coze-tool", input: "Oslo", store: false });
    const call = first.output[0];
    if (call?.type !== "function_call") throw new Error("expected a function_call item");
    const second = await create({
      model: "coze-tool",
      store: false,
      input: [
        user("Oslo"),
        {
          type: "function_call",
          call_id: call.call_id,
          name: call.name,
          arguments: call.arguments,
        },
        { type: "function_call_output", call_id: call.call_id, output: "snow" },
      ],
    });
    expect(second.output_text).toBe("The tool said: snow");
    expect(fx.demo.emulator.stats().chatsCreated).toBe(1);
  });

  it("streams a function call: item added, arguments delta and done, item done", async () => {
    const s = await collect(
      await client.responses.create({ model: "coze-tool", input: "Rome", stream: true }),
    );
    expect(s.types.slice(2)).toEqual([
      "response.output_item.added",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
    ]);
    const args = last(s.events, "response.function_call_arguments.done");
    expect(JSON.parse(args.arguments)).toEqual({ location: "Rome" });
    const item = last(s.events, "response.output_item.done").item;
    if (item.type !== "function_call") throw new Error("expected a function_call item");
    const answer = await collect(
      await client.responses.create({
        model: "coze-tool",
        input: [{ type: "function_call_output", call_id: item.call_id, output: "rain" }],
        stream: true,
      }),
    );
    expect(answer.text).toBe("The tool said: rain");
  });
});

describe("workflows through client.responses", () => {
  it("runs a workflow on the input text and gives its output, execute_id and usage", async () => {
    const r = await create({ model: demoModels.workflow, input: "hi" });
    expect(r.output_text).toBe("hi");
    expect(extra(r).execute_id).toMatch(handed);
    const n = runUsage('{"output":"hi"}');
    expect(r.usage).toMatchObject({
      input_tokens: n.input_count,
      output_tokens: n.output_count,
      total_tokens: n.token_count,
    });
    expect(r.id).toMatch(/^resp_/);
  });

  it("streams a workflow: the output, as a non-stream response gives it, then response.completed", async () => {
    const s = await collect(
      await client.responses.create({ model: demoModels.workflow, input: "hi", stream: true }),
    );
    expect(s.text).toBe("hi");
    expect(s.types.at(-1)).toBe("response.completed");
  });

  it("streams an async workflow once its run ended", async () => {
    const s = await collect(
      await createStream({
        model: demoModels.workflowAsync,
        input: "x",
        parameters: { input: "late", polls: 2 },
      }),
    );
    expect(JSON.parse(s.text)).toMatchObject({ output: "late" });
  });

  it("ends an interrupted run with the question and an interrupt field, and resumes it", async () => {
    const asked = await create({ model: demoModels.interrupt, input: "weather please" });
    expect(asked.output_text).toBe("Which city?");
    const interrupt = extra(asked).interrupt as { event_id: string; type: number };
    expect(interrupt).toMatchObject({ type: 2, question: "Which city?" });
    const answered = await create({
      model: demoModels.interrupt,
      input: "Paris",
      event_id: interrupt.event_id,
      interrupt_type: interrupt.type,
    });
    expect(answered.output_text).toBe("You answered: Paris");
  });

  it("refuses previous_response_id for a workflow, which has no conversation", async () => {
    const first = await create({ model: "coze-echo", input: "x" });
    const err = await failure(
      create({ model: demoModels.workflow, input: "hi", previous_response_id: first.id }),
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe("previous_response_id");
  });
});

async function failure(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    return e as InstanceType<typeof OpenAI.APIError>;
  }
  throw new Error("expected the call to fail");
}

describe("errors through client.responses", () => {
  it("gives NotFoundError for an unknown model, streamed or not", async () => {
    for (const stream of [false, true]) {
      const err = await failure(
        client.responses.create({ model: "no-such-model", input: "x", stream }),
      );
      expect(err).toBeInstanceOf(OpenAI.NotFoundError);
      expect([err.code, err.param]).toEqual(["model_not_found", "model"]);
    }
  });

  it("gives PermissionDeniedError for a model outside the key's allow-list", async () => {
    const err = await failure(
      clientFor(limitedKey).responses.create({ model: "coze-echo", input: "x" }),
    );
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(fx.demo.emulator.stats().calls.chat ?? 0).toBe(0);
  });

  it("gives NotFoundError for another key's previous_response_id, call id or item, as for a forged one", async () => {
    const first = await create({ model: "coze-echo", input: "mine" });
    const tool = await create({ model: "coze-tool", input: "Paris" });
    const call = tool.output[0];
    if (call?.type !== "function_call") throw new Error("expected a function_call item");
    const other = clientFor(otherKey);
    const attempts: [ResponseCreateParamsBase, string][] = [
      [{ model: "coze-echo", input: "x", previous_response_id: first.id }, "previous_response_id"],
      [
        { model: "coze-echo", input: "x", previous_response_id: `resp_${"A".repeat(40)}` },
        "previous_response_id",
      ],
      [
        {
          model: "coze-tool",
          input: [{ type: "function_call_output", call_id: call.call_id, output: "x" }],
        },
        "input[0].call_id",
      ],
      [
        {
          model: "coze-echo",
          input: [{ type: "item_reference", id: first.output[0]?.id ?? "" }, user("x")],
          stream: true,
        },
        "input[0].id",
      ],
    ];
    const chats = fx.demo.emulator.stats().calls.chat;
    for (const [params, param] of attempts) {
      const err = await failure(other.responses.create(params));
      expect(err).toBeInstanceOf(OpenAI.NotFoundError);
      expect([err.code, err.param]).toEqual(["not_found", param]);
    }
    // Refused before Coze was called.
    expect(fx.demo.emulator.stats().calls.chat).toBe(chats);
    expect(fx.demo.emulator.stats().calls["chat.submit_tool_outputs"] ?? 0).toBe(0);
  });

  it("gives BadRequestError naming the input field", async () => {
    const cases: [ResponseCreateParamsNonStreaming, string][] = [
      [{ model: "coze-echo", input: [] }, "input"],
      [{ model: "coze-echo", input: [{ role: "tool", content: "x" } as never] }, "input[0].role"],
      [
        {
          model: "coze-echo",
          input: [{ role: "user", content: [{ type: "input_file", file_id: "f" }] }],
        },
        "input[0].content[0].type",
      ],
      [
        {
          model: "coze-echo",
          input: [
            user("x"),
            {
              role: "user",
              content: [{ type: "input_image", image_url: "ftp://x", detail: "auto" }],
            },
          ],
        },
        "input[1].content[0].image_url",
      ],
      [
        {
          model: "coze-tool",
          input: [{ type: "function_call_output", call_id: "call_x", output: "o" }],
        },
        "input[0].call_id",
      ],
      [{ model: "coze-echo", input: "x", background: true }, "background"],
      [{ model: "coze-echo", input: "x", temperature: "hot" as never }, "temperature"],
      [{ model: demoModels.workflow, input: [{ role: "system", content: "only rules" }] }, "input"],
    ];
    for (const [params, param] of cases) {
      const err = await failure(client.responses.create(params));
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err.param).toBe(param);
      expect(err.message).toContain(param);
    }
  });

  it("ends a stream whose bot fails with response.failed and an error the SDK raises, never completed", async () => {
    const events: ResponseStreamEvent[] = [];
    const err = await failure(
      (async () => {
        const s = await client.responses.create({
          model: `bot:${catalog.bots.failing}`,
          input: "x",
          stream: true,
        });
        for await (const e of s) events.push(e);
      })(),
    );
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.code).toBe("upstream_error");
    checkSequence(events);
    const failed = last(events, "response.failed").response;
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatchObject({ code: "upstream_error" });
    expect(events.some((e) => e.type === "response.completed")).toBe(false);
  });

  it("fails the stream when Coze cuts it midway, and the stream helper rejects", async () => {
    fx.demo.emulator.faults.inject({ kind: "reset", endpoint: "chat", afterEvents: 4 });
    const types: string[] = [];
    const stream = client.responses.stream({
      model: "coze-echo",
      input: "one two three four five",
    });
    stream.on("event", (e) => types.push(e.type));
    const err = await failure(stream.finalResponse());
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(types).toContain("response.output_text.delta");
    expect(types.at(-1)).toBe("response.failed");
    expect(types).not.toContain("response.completed");
  });

  it("gives 404 for reading, deleting or cancelling a response: nothing is stored", async () => {
    const r = await create({ model: "coze-echo", input: "x" });
    for (const call of [
      () => client.responses.retrieve(r.id),
      () => client.responses.delete(r.id),
      () => client.responses.cancel(r.id),
      async () => client.responses.inputItems.list(r.id),
    ]) {
      const err = await failure(call());
      expect(err).toBeInstanceOf(OpenAI.NotFoundError);
      expect(err.message).toContain("does not store responses");
    }
  });
});
