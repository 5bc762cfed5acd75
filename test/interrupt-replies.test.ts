import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { interruptDefaults } from "../src/config/index.js";
import { demoModels, startDemo } from "../src/demo.js";
import type { Emulator } from "../src/emulator/index.js";
import { startGateway } from "../src/gateway.js";
import { assistant, conversation, type Message, runsSeen, say, user } from "./support/front-end.js";
import { type Replicas, startReplicas, testKey } from "./support/limited-gateways.js";
import { createManualClock, type ManualClock } from "./support/manual-clock.js";

// Issue 16 "A workflow interrupt can be answered by simply replying": a chat front-end sends
// the whole history back; the reply to a workflow's question resumes the interrupted run.

const model = demoModels.interrupt;
const ttlMs = interruptDefaults.ttlSeconds * 1000;

describe("answering a workflow's question by replying (one gateway, state in memory)", () => {
  let replicas: Replicas;
  let clock: ManualClock;
  let client: OpenAI;
  let other: OpenAI;
  let emulator: Emulator;
  beforeAll(async () => {
    clock = createManualClock(Date.now());
    replicas = await startReplicas({ count: 1, keys: [testKey("other")], limitsClock: clock });
    const baseURL = `${replicas.urls[0]}/v1`;
    client = new OpenAI({ baseURL, apiKey: replicas.demo.apiKey, maxRetries: 0 });
    other = new OpenAI({ baseURL, apiKey: replicas.key("other"), maxRetries: 0 });
    emulator = replicas.demo.emulator;
  });
  afterAll(async () => {
    await replicas?.close();
  });
  afterEach(() => emulator.reset());

  for (const stream of [false, true]) {
    it(`resumes the run with the reply, ${stream ? "streamed" : "not streamed"}`, async () => {
      const chat = conversation(client, { stream });
      expect(await chat.send("weather please")).toBe("Which city?");
      expect(await chat.send("Paris")).toBe("You answered: Paris");
      expect(runsSeen(emulator)).toEqual({ runs: 1, resumes: 1 });
    });
  }

  it("resumes whatever the system message says (front-ends put the time in it)", async () => {
    let n = 0;
    const chat = conversation(client, { system: () => `You are helpful. Turn ${++n}.` });
    expect(await chat.send("weather please")).toBe("Which city?");
    expect(await chat.send("Lyon")).toBe("You answered: Lyon");
    expect(runsSeen(emulator)).toEqual({ runs: 1, resumes: 1 });
  });

  it("stores the question again when the resumed run asks again", async () => {
    // The emulator's run asks again when the answer is empty.
    const chat = conversation(client, { stream: true });
    expect(await chat.send("weather please")).toBe("Which city?");
    expect(await chat.send("")).toBe("Which city?");
    expect(await chat.send("Oslo")).toBe("You answered: Oslo");
    expect(runsSeen(emulator)).toEqual({ runs: 1, resumes: 2 });
  });

  it("answers each question once: the same reply again starts a new run", async () => {
    const chat = conversation(client);
    await chat.send("weather please");
    const reply = [...chat.history, user("Rome")];
    expect(await say(client, reply)).toBe("You answered: Rome");
    expect(await say(client, reply)).toBe("Which city?");
    expect(runsSeen(emulator)).toEqual({ runs: 2, resumes: 1 });
  });

  it("starts a new run for another key with the identical history, and leaves the first key's question", async () => {
    const chat = conversation(client);
    await chat.send("weather please");
    const reply = [...chat.history, user("Paris")];
    expect(await say(other, reply)).toBe("Which city?");
    expect(runsSeen(emulator)).toEqual({ runs: 2, resumes: 0 });
    expect(await say(client, reply)).toBe("You answered: Paris");
    expect(runsSeen(emulator)).toEqual({ runs: 2, resumes: 1 });
  });

  it("starts a new run for an edited history, another end user or another model", async () => {
    const chat = conversation(client);
    await chat.send("weather please");
    const edits: [string, Message[], Record<string, unknown>][] = [
      ["an edited question", [user("weather please"), assistant("Which town?"), user("X")], {}],
      [
        "an edited first message",
        [user("weather, please"), assistant("Which city?"), user("X")],
        {},
      ],
      ["another end user", [...chat.history, user("X")], { user: "someone-else" }],
    ];
    for (const [, messages, extra] of edits) {
      const r = await client.chat.completions.create({ model, messages, ...extra });
      expect(r.choices[0]?.message.content).toBe("Which city?");
    }
    const echo = await client.chat.completions.create({
      model: demoModels.workflow,
      messages: [...chat.history, user("X")],
    });
    expect(echo.choices[0]?.message.content).toBe("X");
    expect(runsSeen(emulator)).toEqual({ runs: 5, resumes: 0 });
    // The untouched history still resumes.
    expect(await chat.send("Paris")).toBe("You answered: Paris");
  });

  it("forgets a question after interrupts.ttl_seconds", async () => {
    const early = conversation(client);
    const late = conversation(client);
    await early.send("weather please");
    await late.send("weather today");
    await clock.advance(ttlMs - 1000);
    expect(await early.send("Paris")).toBe("You answered: Paris");
    await clock.advance(1000);
    expect(await late.send("Paris")).toBe("Which city?");
    expect(runsSeen(emulator)).toEqual({ runs: 3, resumes: 1 });
  });

  it("resumes once for two replies at once: the other is a new message", async () => {
    const chat = conversation(client);
    await chat.send("weather please");
    const reply = [...chat.history, user("Paris")];
    const answers = await Promise.all([say(client, reply), say(client, reply, true)]);
    expect(answers.sort()).toEqual(["Which city?", "You answered: Paris"]);
    expect(runsSeen(emulator)).toEqual({ runs: 2, resumes: 1 });
  });

  it("does not let an SDK retry a failed resume into a new run", async () => {
    // The SDK's default retries, which retry a 5xx unless told not to.
    const retrying = new OpenAI({ baseURL: client.baseURL, apiKey: replicas.demo.apiKey });
    for (const stream of [true, false]) {
      // A streamed question: its run's id is not known, so only the reply can say "no retry".
      const chat = conversation(client, { stream: true });
      expect(await chat.send(`weather, ${stream}`)).toBe("Which city?");
      emulator.faults.inject({
        kind: "status",
        endpoint: "workflow.stream_resume",
        status: 503,
        times: 1,
      });
      const reply = [...chat.history, user("Paris")];
      const err = await say(retrying, reply, stream).then(
        () => expect.fail("the resume was refused"),
        (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
      );
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect(err.status).toBeGreaterThanOrEqual(500);
      expect(err.headers?.get("x-should-retry")).toBe("false");
      // Taken once: sent again by hand, the reply is a new message.
      expect(await say(client, reply, stream)).toBe("Which city?");
    }
    expect(runsSeen(emulator)).toEqual({ runs: 4, resumes: 2 });
  });

  it("still resumes by event_id and interrupt_type, which the reply then does not resume again", async () => {
    const asked = await client.chat.completions.create({
      model,
      messages: [user("weather please")],
    });
    const interrupt = (asked as unknown as { interrupt: { event_id: string; type: number } })
      .interrupt;
    const messages = [user("weather please"), assistant("Which city?"), user("Paris")];
    const explicit = await client.chat.completions.create({
      model,
      messages,
      event_id: interrupt.event_id,
      interrupt_type: interrupt.type,
    } as never);
    expect(explicit.choices[0]?.message.content).toBe("You answered: Paris");
    expect(runsSeen(emulator)).toEqual({ runs: 1, resumes: 1 });
    // Replayed without them, the answered question is not resumed a second time.
    expect(await say(client, messages)).toBe("Which city?");
    expect(runsSeen(emulator)).toEqual({ runs: 2, resumes: 1 });
  });

  it("resumes through the Responses API with the history as input items, streamed or not", async () => {
    const asked = await client.responses.create({ model, input: "weather please" });
    expect(asked.output_text).toBe("Which city?");
    const answered = await client.responses.create({
      model,
      input: [
        { role: "user", content: "weather please" },
        { role: "assistant", content: asked.output_text },
        { role: "user", content: "Paris" },
      ],
    });
    expect(answered.output_text).toBe("You answered: Paris");
    const stream = await client.responses.create({
      model,
      input: [{ role: "user", content: "weather here" }],
      stream: true,
    });
    let question = "";
    for await (const e of stream) if (e.type === "response.output_text.delta") question += e.delta;
    expect(question).toBe("Which city?");
    const again = await client.responses.create({
      model,
      input: [
        { role: "user", content: "weather here" },
        { type: "message", role: "assistant", content: [{ type: "output_text", text: question }] },
        { role: "user", content: "Nice" },
      ] as never,
    });
    expect(again.output_text).toBe("You answered: Nice");
    expect(runsSeen(emulator)).toEqual({ runs: 2, resumes: 2 });
  });

  it("continues a chatflow's Coze conversation when the reply follows its answer", async () => {
    const first = await client.chat.completions.create({
      model: demoModels.chatflow,
      messages: [user("hello")],
    });
    const started = (first as unknown as { conversation_id: string }).conversation_id;
    expect(started).not.toBe("");
    const history = [user("hello"), assistant(first.choices[0]?.message.content ?? "")];
    const next = await client.chat.completions
      .create({ model: demoModels.chatflow, messages: [...history, user("again")], stream: true })
      .withResponse();
    expect(next.response.headers.get("x-coze-conversation-id")).toBe(started);
    for await (const _ of next.data);
    // Another key's identical history is another conversation.
    const theirs = await other.chat.completions.create({
      model: demoModels.chatflow,
      messages: [...history, user("again")],
    });
    expect((theirs as unknown as { conversation_id: string }).conversation_id).not.toBe(started);
  });
});

describe("with interrupts.ttl_seconds 0", () => {
  it("starts a new run for every reply", async () => {
    const demo = await startDemo({ port: 0, deltaMs: 0, pollIntervalMs: 10 });
    demo.config.interrupts = { ttlSeconds: 0 };
    const gateway = await startGateway({ config: demo.config }).catch(async (err: unknown) => {
      await demo.close();
      throw err;
    });
    try {
      const baseURL = `${gateway.url}/v1`;
      const chat = conversation(new OpenAI({ baseURL, apiKey: demo.apiKey, maxRetries: 0 }));
      expect(await chat.send("weather please")).toBe("Which city?");
      expect(await chat.send("Paris")).toBe("Which city?");
      expect(runsSeen(demo.emulator)).toEqual({ runs: 2, resumes: 0 });
    } finally {
      await gateway.close();
      await demo.close();
    }
  });
});
