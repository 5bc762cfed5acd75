import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type GatewayConfig, interruptDefaults, type ModelRoute } from "../src/config/index.js";
import { demoConfig } from "../src/demo.js";
import { catalog, type Emulator, startEmulator } from "../src/emulator/index.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { assistant, conversation, runsSeen, say, user } from "./support/front-end.js";
import {
  type Replicas,
  readyWith,
  redisState,
  startReplicas,
  testKey,
} from "./support/limited-gateways.js";
import {
  haveRedis,
  type RedisServer,
  redisSkipReason,
  startRedisServer,
} from "./support/redis-server.js";

// Issue 16 "A workflow interrupt can be answered by simply replying", over several replicas and
// channels: the question is remembered in the shared state store, and the run is resumed where
// it lives.

const ttlMs = interruptDefaults.ttlSeconds * 1000;

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
        expect(runsSeen(emulator)).toEqual({ runs: 1, resumes: 1 });
      });
    }

    it("resumes once when both replicas get the reply at once", async () => {
      const [a, b] = clients as [OpenAI, OpenAI];
      const question = await say(a, [user("weather please")]);
      const reply = [user("weather please"), assistant(question), user("Paris")];
      const answers = await Promise.all([say(a, reply), say(b, reply)]);
      expect(answers.sort()).toEqual(["Which city?", "You answered: Paris"]);
      expect(runsSeen(emulator)).toEqual({ runs: 2, resumes: 1 });
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

    it("answers as before while Redis is down: the question goes out, the reply starts a new run", async () => {
      const [a, b] = clients as [OpenAI, OpenAI];
      await redis.stop();
      try {
        await readyWith(replicas.urls[0] as string, "redis unreachable");
        const started = performance.now();
        const question = await say(a, [user("weather please")], true);
        expect(question).toBe("Which city?");
        const reply = [user("weather please"), assistant(question), user("Paris")];
        expect(await say(b, reply)).toBe("Which city?");
        expect(performance.now() - started).toBeLessThan(5_000);
        expect(runsSeen(emulator)).toEqual({ runs: 2, resumes: 0 });
        const warned = replicas.logs.flatMap((l) => l.lines()).map((l) => String(l.msg));
        expect(warned).toContain(
          "interrupt replies: the state store failed to write; a reply starts a new run",
        );
        expect(warned).toContain(
          "interrupt replies: the state store failed to read; a reply starts a new run",
        );
      } finally {
        await redis.start();
      }
    });
  },
);

describe("a workflow served by two channels (two Coze accounts)", () => {
  let a: Emulator;
  let b: Emulator;
  let gateway: Gateway;
  let client: OpenAI;
  const route = (channel: string): ModelRoute => ({
    name: "ask",
    channel,
    kind: "workflow",
    targetId: catalog.workflows.interrupt,
    inputField: "input",
    weight: 1,
  });
  beforeAll(async () => {
    a = await startEmulator();
    b = await startEmulator();
    const apiKey = "two-channels-key-0123456789";
    const base = demoConfig({ emulatorUrl: a.url, app: await a.createApp(), apiKey });
    const second = demoConfig({ emulatorUrl: b.url, app: await b.createApp(), apiKey });
    const channel = (c: GatewayConfig, name: string, isDefault: boolean) => ({
      ...(c.channels[0] as GatewayConfig["channels"][number]),
      name,
      isDefault,
    });
    const config: GatewayConfig = {
      ...base,
      server: { ...base.server, port: 0 },
      channels: [channel(base, "a", true), channel(second, "b", false)],
      models: [route("a"), route("b")],
    };
    gateway = await startGateway({ config });
    client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey, maxRetries: 0 });
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all([a?.close(), b?.close()]);
  });

  for (const stream of [false, true]) {
    it(`resumes the run on the channel that asked, ${stream ? "streamed" : "not streamed"}`, async () => {
      // Channel a refuses to start runs: whichever channel is picked first, b asks.
      for (const endpoint of ["workflow.run", "workflow.stream_run"] as const) {
        a.faults.inject({ kind: "status", endpoint, status: 503, times: 10 });
      }
      try {
        const chat = conversation(client, { stream, model: "ask" });
        expect(await chat.send("weather please")).toBe("Which city?");
        expect(await chat.send("Paris")).toBe("You answered: Paris");
        expect(runsSeen(b)).toEqual({ runs: 1, resumes: 1 });
        expect(runsSeen(a)).toEqual({ runs: 0, resumes: 0 });
      } finally {
        a.faults.clear();
        a.reset();
        b.reset();
      }
    });
  }
});
