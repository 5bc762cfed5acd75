import OpenAI from "openai";
import type { ChatCompletionMessageParam } from "openai/resources/chat/completions";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { interruptDefaults } from "../src/config/index.js";
import { demoModels, startDemo } from "../src/demo.js";
import type { Emulator } from "../src/emulator/index.js";
import { startGateway } from "../src/gateway.js";
import { type Replicas, redisState, startReplicas, testKey } from "./support/limited-gateways.js";
import { createManualClock, type ManualClock } from "./support/manual-clock.js";
import {
  haveRedis,
  type RedisServer,
  redisSkipReason,
  startRedisServer,
} from "./support/redis-server.js";

// Issue 16 "A workflow interrupt can be answered by simply replying": a chat front-end sends
// the whole history back; the reply to a workflow's question resumes the interrupted run.

type Message = ChatCompletionMessageParam;
const user = (content: string): Message => ({ role: "user", content });
const assistant = (content: string): Message => ({ role: "assistant", content });
const model = demoModels.interrupt;
const ttlMs = interruptDefaults.ttlSeconds * 1000;

/** What the emulator saw: workflow runs started and resumes of any kind. */
function seen(emulator: Emulator): { runs: number; resumes: number } {
  const s = emulator.stats();
  const resumes = Object.entries(s.calls)
    .filter(([name]) => name.includes("resume"))
    .reduce((n, [, count]) => n + (count ?? 0), 0);
  return { runs: s.workflowRunsStarted, resumes };
}

/** The assistant's text for `messages`, as a front-end gets it, streamed or not. */
async function say(client: OpenAI, messages: Message[], stream = false): Promise<string> {
  if (!stream) {
    const r = await client.chat.completions.create({ model, messages });
    return r.choices[0]?.message.content ?? "";
  }
  const s = await client.chat.completions.create({ model, messages, stream: true });
  let text = "";
  for await (const c of s) text += c.choices[0]?.delta.content ?? "";
  return text;
}

/**
 * A front-end's conversation: each turn sends the whole history plus the new user message, and
 * keeps the assistant's answer in the history (as LobeChat and Open WebUI do).
 */
function conversation(client: OpenAI, stream = false, system?: () => string) {
  const history: Message[] = [];
  return {
    history,
    async send(text: string): Promise<string> {
      history.push(user(text));
      const head = system ? [{ role: "system", content: system() } as Message] : [];
      const answer = await say(client, [...head, ...history], stream);
      history.push(assistant(answer));
      return answer;
    },
  };
}

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
      const chat = conversation(client, stream);
      expect(await chat.send("weather please")).toBe("Which city?");
      expect(await chat.send("Paris")).toBe("You answered: Paris");
      expect(seen(emulator)).toEqual({ runs: 1, resumes: 1 });
    });
  }

  it("resumes whatever the system message says (front-ends put the time in it)", async () => {
    let n = 0;
    const chat = conversation(client, false, () => `You are helpful. Turn ${++n}.`);
    expect(await chat.send("weather please")).toBe("Which city?");
    expect(await chat.send("Lyon")).toBe("You answered: Lyon");
    expect(seen(emulator)).toEqual({ runs: 1, resumes: 1 });
  });

  it("stores the question again when the resumed run asks again", async () => {
    // The emulator's run asks again when the answer is empty.
    const chat = conversation(client, true);
    expect(await chat.send("weather please")).toBe("Which city?");
    expect(await chat.send("")).toBe("Which city?");
    expect(await chat.send("Oslo")).toBe("You answered: Oslo");
    expect(seen(emulator)).toEqual({ runs: 1, resumes: 2 });
  });

  it("answers each question once: the same reply again starts a new run", async () => {
    const chat = conversation(client);
    await chat.send("weather please");
    const reply = [...chat.history, user("Rome")];
    expect(await say(client, reply)).toBe("You answered: Rome");
    expect(await say(client, reply)).toBe("Which city?");
    expect(seen(emulator)).toEqual({ runs: 2, resumes: 1 });
  });

  it("starts a new run for another key with the identical history, and leaves the first key's question", async () => {
    const chat = conversation(client);
    await chat.send("weather please");
    const reply = [...chat.history, user("Paris")];
    expect(await say(other, reply)).toBe("Which city?");
    expect(seen(emulator)).toEqual({ runs: 2, resumes: 0 });
    expect(await say(client, reply)).toBe("You answered: Paris");
    expect(seen(emulator)).toEqual({ runs: 2, resumes: 1 });
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
    expect(seen(emulator)).toEqual({ runs: 5, resumes: 0 });
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
    expect(seen(emulator)).toEqual({ runs: 3, resumes: 1 });
  });

  it("resumes once for two replies at once: the other is a new message", async () => {
    const chat = conversation(client);
    await chat.send("weather please");
    const reply = [...chat.history, user("Paris")];
    const answers = await Promise.all([say(client, reply), say(client, reply, true)]);
    expect(answers.sort()).toEqual(["Which city?", "You answered: Paris"]);
    expect(seen(emulator)).toEqual({ runs: 2, resumes: 1 });
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
    expect(seen(emulator)).toEqual({ runs: 1, resumes: 1 });
    // Replayed without them, the answered question is not resumed a second time.
    expect(await say(client, messages)).toBe("Which city?");
    expect(seen(emulator)).toEqual({ runs: 2, resumes: 1 });
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
    expect(seen(emulator)).toEqual({ runs: 2, resumes: 2 });
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

describe.skipIf(!haveRedis)(
  `answering by replying across replicas on one Redis${redisSkipReason}`,
  () => {
    let redis: RedisServer;
    let replicas: Replicas;
    let emulator: Emulator;
    let clients: OpenAI[];
    beforeAll(async () => {
      redis = await startRedisServer();
      replicas = await startReplicas({
        count: 2,
        keys: [testKey("other")],
        state: redisState(redis.url, { timeoutMs: 2000 }),
      });
      await replicas.ready("redis");
      emulator = replicas.demo.emulator;
      clients = replicas.urls.map(
        (url) => new OpenAI({ baseURL: `${url}/v1`, apiKey: replicas.demo.apiKey, maxRetries: 0 }),
      );
    });
    afterAll(async () => {
      await replicas?.close();
      await redis?.close();
    });
    afterEach(() => emulator.reset());

    for (const stream of [false, true]) {
      it(`resumes on replica B the question replica A asked, ${stream ? "streamed" : "not streamed"}`, async () => {
        const [a, b] = clients as [OpenAI, OpenAI];
        const history = [user("weather please")];
        const question = await say(a, history, stream);
        expect(question).toBe("Which city?");
        const reply = [...history, assistant(question), user("Paris")];
        expect(await say(b, reply, stream)).toBe("You answered: Paris");
        expect(seen(emulator)).toEqual({ runs: 1, resumes: 1 });
      });
    }

    it("resumes once when both replicas get the reply at once", async () => {
      const [a, b] = clients as [OpenAI, OpenAI];
      const question = await say(a, [user("weather please")]);
      const reply = [user("weather please"), assistant(question), user("Paris")];
      const answers = await Promise.all([say(a, reply), say(b, reply)]);
      expect(answers.sort()).toEqual(["Which city?", "You answered: Paris"]);
      expect(seen(emulator)).toEqual({ runs: 2, resumes: 1 });
    });

    it("keeps a question in Redis under a digest for ttl_seconds, apart from another key's", async () => {
      const [a] = clients as [OpenAI];
      const client = redis.client();
      const entries = async () =>
        (await client.keys("*ir:*")).filter((k) => /ir:[A-Za-z0-9_-]{43}$/.test(k)).sort();
      const stale = await client.keys("*ir:*");
      if (stale.length > 0) await client.del(...stale);
      await say(a, [user("weather please")]);
      const [key, ...more] = await entries();
      expect(more).toEqual([]);
      const ttl = await client.pttl(key as string);
      expect(ttl).toBeGreaterThan(ttlMs - 60_000);
      expect(ttl).toBeLessThanOrEqual(ttlMs);
      // Nothing of the conversation is in the key or the value.
      const value = (await client.get(key as string)) ?? "";
      expect(`${key} ${value}`).not.toMatch(/weather|Which city/);
      const otherKey = new OpenAI({
        baseURL: a.baseURL,
        apiKey: replicas.key("other"),
        maxRetries: 0,
      });
      const reply = [user("weather please"), assistant("Which city?"), user("Paris")];
      expect(await say(otherKey, reply)).toBe("Which city?");
      // The other key's run asked too: its question is an entry of its own.
      expect(await entries()).toHaveLength(2);
      expect(await client.exists(key as string)).toBe(1);
    });
  },
);

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
      expect(seen(demo.emulator)).toEqual({ runs: 2, resumes: 0 });
    } finally {
      await gateway.close();
      await demo.close();
    }
  });
});
