import OpenAI from "openai";
import type { ChatCompletionMessageParam } from "openai/resources/chat/completions";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { demoModels } from "../src/demo.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";
import { handed } from "./support/handles.js";

// Issue 16 "Browsers and front-ends": what a chat front-end on the openai SDK meets next.

let fx: GatewayFixture;
let client: OpenAI;
beforeAll(async () => {
  fx = await startGatewayFixture();
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
const user = (content: string) => ({ role: "user" as const, content });

/** The whole text of a chat completion stream, and its last chunk with a choice. */
async function streamed(params: Extra) {
  const s = await client.chat.completions.create({ ...params, stream: true } as never);
  let text = "";
  let finish: Extra | undefined;
  for await (const c of s as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) {
    text += c.choices[0]?.delta.content ?? "";
    if (c.choices[0]?.finish_reason) finish = c as unknown as Extra;
  }
  return { text, finish };
}

async function failure(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await p;
  } catch (err) {
    if (err instanceof OpenAI.APIError) return err;
    throw err;
  }
  throw new Error("expected an APIError");
}

describe("an assistant message without text in the history", () => {
  // What a front-end keeps of a turn the user stopped: OpenAI accepts all of these.
  const stopped: [string, ChatCompletionMessageParam][] = [
    ['content ""', { role: "assistant", content: "" }],
    ["content null", { role: "assistant", content: null }],
    ["no content", { role: "assistant" } as ChatCompletionMessageParam],
    ["an empty parts array", { role: "assistant", content: [] }],
    ["one empty text part", { role: "assistant", content: [{ type: "text", text: "" }] }],
    ["null content and an empty tool_calls", { role: "assistant", content: null, tool_calls: [] }],
  ];

  for (const [name, empty] of stopped) {
    it(`is accepted and not sent to Coze: ${name}`, async () => {
      const messages = [user("first"), empty, user("!received again")];
      const r = await client.chat.completions.create({ model: demoModels.bot, messages });
      const seen = JSON.parse(r.choices[0]?.message.content ?? "{}").messages as Extra[];
      // The bot received both user turns, and no assistant message at all.
      expect(seen.map((m) => [m.role, m.content])).toEqual([
        ["user", "first"],
        ["user", "!received again"],
      ]);
      const s = await streamed({ model: demoModels.bot, messages });
      expect(JSON.parse(s.text).messages).toEqual(seen);
    });
  }

  it("keeps the assistant messages that have text, in order", async () => {
    const messages: ChatCompletionMessageParam[] = [
      user("a"),
      { role: "assistant", content: "You said: a" },
      user("b"),
      { role: "assistant", content: "" },
      user("!received c"),
    ];
    const r = await client.chat.completions.create({ model: demoModels.bot, messages });
    const seen = JSON.parse(r.choices[0]?.message.content ?? "{}").messages as Extra[];
    expect(seen.map((m) => m.content)).toEqual(["a", "You said: a", "b", "!received c"]);
  });

  it("is accepted by the Responses door too", async () => {
    const r = await client.responses.create({
      model: demoModels.bot,
      input: [
        { role: "user", content: "first" },
        { role: "assistant", content: "" },
        { role: "user", content: "!received" },
      ],
    });
    const seen = JSON.parse(r.output_text).messages as Extra[];
    expect(seen.map((m) => m.role)).toEqual(["user", "user"]);
  });

  it("answers a history that ends with the stopped turn like its user message (regenerate)", async () => {
    const r = await client.chat.completions.create({
      model: demoModels.bot,
      messages: [user("again"), { role: "assistant", content: "" }],
    });
    expect(r.choices[0]?.message.content).toBe("You said: again");
  });
});

describe("the same run gives the same content streamed and not streamed", () => {
  const cases: [string, string, Extra?][] = [
    ["a bot", demoModels.bot],
    ["a reasoning bot", demoModels.reasoning],
    ["a chatflow", demoModels.chatflow],
    ["a workflow", demoModels.workflow],
    ["an async workflow", demoModels.workflowAsync, { parameters: { input: "hi", polls: 2 } }],
    ["a workflow that interrupts", demoModels.interrupt],
  ];

  for (const [name, model, extra = {}] of cases) {
    it(`for ${name}, over Chat Completions and the Responses API`, async () => {
      const params = { model, messages: [user("hi")], ...extra };
      const whole = await client.chat.completions.create(params as never);
      const content = (whole as OpenAI.ChatCompletion).choices[0]?.message.content;
      expect(content).not.toBe("");
      const s = await streamed(params);
      expect(s.text).toBe(content);
      // The extension fields agree too: an interrupt's type and question (its event id is the
      // run's own), a workflow's execute id.
      const question = (r: Extra | undefined) => {
        const i = r?.interrupt as Extra | undefined;
        return i && [i.type, i.question];
      };
      expect(question(s.finish)).toEqual(question(whole as unknown as Extra));
      // A streamed interrupt cannot name its run: stream_run says the id only at `Done`.
      if (model.startsWith("workflow") && model !== demoModels.interrupt) {
        expect((whole as unknown as Extra).execute_id).toMatch(handed);
        expect(s.finish?.execute_id).toMatch(handed);
      }

      const input = { model, input: "hi", ...extra };
      const response = await client.responses.create(input as never);
      expect((response as OpenAI.Responses.Response).output_text).toBe(content);
      const events = await client.responses.create({ ...input, stream: true } as never);
      let text = "";
      for await (const e of events as unknown as AsyncIterable<OpenAI.Responses.ResponseStreamEvent>) {
        if (e.type === "response.output_text.delta") text += e.delta;
      }
      expect(text).toBe(content);
    });
  }
});

describe("response_format and text.format", () => {
  // The echo bot answers `You said: …`, or with `!received` the JSON object of what it got.
  const history = [user("hi"), { role: "assistant" as const, content: "You said: hi" }];
  const received = [...history, user("!received")];
  const schema = (required: string[]) => ({
    type: "object",
    properties: { user_id: { type: "string" }, messages: { type: "array" } },
    required,
  });
  const jsonSchema = (required: string[], strict = true) => ({
    type: "json_schema" as const,
    json_schema: { name: "dump", schema: schema(required), strict },
  });

  it("tells the bot to answer JSON and passes an answer that is a JSON object", async () => {
    const r = await client.chat.completions.create({
      model: demoModels.bot,
      messages: received,
      response_format: { type: "json_object" },
    });
    const answer = JSON.parse(r.choices[0]?.message.content ?? "");
    // The instruction reached the bot, folded into the first user message like a system one.
    expect(answer.messages[0].content).toBe(
      "Answer with one JSON object and nothing else (no text before or after it, no Markdown code fence).\n\nhi",
    );
  });

  it("answers 502 invalid_json_output when the answer is not a JSON object, streamed or not", async () => {
    const params = {
      model: demoModels.bot,
      messages: [user("hi")],
      response_format: { type: "json_object" as const },
    };
    const err = await failure(client.chat.completions.create(params));
    expect([err.status, err.code, err.type]).toEqual([502, "invalid_json_output", "server_error"]);
    expect((err.error as Extra).message).toBe("the answer is not JSON, as response_format asks");
    // A stream is written as it comes and checked at its end: an error event, never [DONE].
    const chunks: string[] = [];
    const cut = await failure(
      (async () => {
        const s = await client.chat.completions.create({ ...params, stream: true });
        for await (const c of s) chunks.push(c.choices[0]?.delta.content ?? "");
      })(),
    );
    expect(cut.code).toBe("invalid_json_output");
    expect(chunks.join("")).toMatch(/^You said: Answer with one JSON object .*\n\nhi$/s);
  });

  it("validates a strict json_schema answer against the schema", async () => {
    const ok = await client.chat.completions.create({
      model: demoModels.bot,
      messages: received,
      response_format: jsonSchema(["user_id", "messages"]),
    });
    const answer = JSON.parse(ok.choices[0]?.message.content ?? "");
    expect(answer.messages[0].content).toContain(
      'It must validate against this JSON Schema, named "dump": {"type":"object"',
    );
    const err = await failure(
      client.chat.completions.create({
        model: demoModels.bot,
        messages: received,
        response_format: jsonSchema(["answer"]),
      }),
    );
    expect([err.status, err.code]).toEqual([502, "invalid_json_output"]);
    expect((err.error as Extra).message).toBe(
      "the answer does not validate against schema \"dump\": at /, must have required property 'answer'",
    );
    // Without strict the answer only has to be JSON.
    const loose = await client.chat.completions.create({
      model: demoModels.bot,
      messages: received,
      response_format: jsonSchema(["answer"], false),
    });
    expect(JSON.parse(loose.choices[0]?.message.content ?? "")).toHaveProperty("messages");
  });

  it("gives a workflow's output as its JSON text, checked the same way", async () => {
    const r = await client.chat.completions.create({
      model: demoModels.workflow,
      messages: [user("hi")],
      response_format: { type: "json_object" },
    });
    expect(JSON.parse(r.choices[0]?.message.content ?? "")).toEqual({ output: "hi" });
    const s = await streamed({
      model: demoModels.workflow,
      messages: [user("hi")],
      response_format: { type: "json_object" },
    });
    expect(JSON.parse(s.text)).toEqual({ output: "hi" });
    const err = await failure(
      client.chat.completions.create({
        model: demoModels.workflow,
        messages: [user("hi")],
        response_format: {
          type: "json_schema",
          json_schema: {
            name: "n",
            strict: true,
            schema: { type: "object", properties: { output: { type: "number" } } },
          },
        },
      }),
    );
    expect((err.error as Extra).message).toBe(
      'the answer does not validate against schema "n": at /output, must be number',
    );
    // The error names the run, which did happen.
    expect((err.error as Extra).execute_id).toMatch(handed);
    expect(err.headers?.get("x-coze-execute-id")).toBe((err.error as Extra).execute_id);
  });

  it("applies text.format on the Responses API, streamed or not", async () => {
    const input = [
      { role: "user" as const, content: "hi" },
      { role: "assistant" as const, content: "You said: hi" },
      { role: "user" as const, content: "!received" },
    ];
    const format = {
      type: "json_schema" as const,
      name: "dump",
      schema: schema(["messages"]),
      strict: true,
    };
    const r = await client.responses.create({ model: demoModels.bot, input, text: { format } });
    expect(JSON.parse(r.output_text)).toHaveProperty("messages");
    const bad = { ...format, schema: schema(["answer"]) };
    const err = await failure(
      client.responses.create({ model: demoModels.bot, input, text: { format: bad } }),
    );
    expect([err.status, err.code]).toEqual([502, "invalid_json_output"]);
    const types: string[] = [];
    const cut = await failure(
      (async () => {
        const s = await client.responses.create({
          model: demoModels.bot,
          input,
          text: { format: bad },
          stream: true,
        });
        for await (const e of s) types.push(e.type);
      })(),
    );
    expect(cut.message).toContain("must have required property 'answer'");
    expect(types).toContain("response.failed");
    expect(types).not.toContain("response.completed");
  });

  it("refuses a malformed response_format with a 400 naming the field, before calling Coze", async () => {
    const cases: [unknown, string][] = [
      ["json", "response_format"],
      [{ type: "xml" }, "response_format.type"],
      [{ type: "json_schema" }, "response_format.json_schema"],
      [{ type: "json_schema", json_schema: { schema: {} } }, "response_format.json_schema.name"],
      [{ type: "json_schema", json_schema: { name: "a b" } }, "response_format.json_schema.name"],
      [
        {
          type: "json_schema",
          json_schema: { name: "n", strict: true, schema: { type: "objekt" } },
        },
        "response_format.json_schema.schema",
      ],
      [
        {
          type: "json_schema",
          json_schema: { name: "n", strict: true, schema: { $ref: "http://example.com/s.json" } },
        },
        "response_format.json_schema.schema",
      ],
      [
        {
          type: "json_schema",
          json_schema: { name: "n", schema: { description: "x".repeat(40_000) } },
        },
        "response_format.json_schema.schema",
      ],
    ];
    for (const [format, param] of cases) {
      const err = await failure(
        client.chat.completions.create({
          model: demoModels.bot,
          messages: [user("hi")],
          response_format: format as never,
        }),
      );
      expect([err.status, err.param], JSON.stringify(format).slice(0, 80)).toEqual([400, param]);
    }
    const err = await failure(
      client.responses.create({
        model: demoModels.bot,
        input: "hi",
        text: { format: { type: "json_schema" } as never },
      }),
    );
    expect([err.status, err.param]).toEqual([400, "text.format.name"]);
    expect(fx.demo.emulator.stats().chatsCreated).toBe(0);
  });
});
