import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { periodOf } from "../src/limits/index.js";
import {
  chat,
  limitHeaders,
  type Replicas,
  readyWith,
  redisState,
  slowStream,
  startReplicas,
  testKey,
} from "./support/limited-gateways.js";
import { createManualClock } from "./support/manual-clock.js";
import {
  haveRedis,
  monitorCommands,
  type RedisServer,
  redisSkipReason,
  startRedisServer,
} from "./support/redis-server.js";

// Issue 15 "Shared state": replicas on one Redis enforce one limit, and keep serving while
// Redis is away. Each replica is a whole gateway with its own Redis client.

let redis: RedisServer;
beforeAll(async () => {
  if (haveRedis) redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.close();
});

let replicas: Replicas | undefined;
afterEach(async () => {
  await replicas?.close();
  replicas = undefined;
});

/** A manual clock ahead of the real one (Redis expires counters by its own clock). */
const clockAhead = () => createManualClock(periodOf("day", Date.now()).endMs + 3_600_000);

/**
 * Redis state for these tests. The timeout is generous: 30 requests at once on a loaded machine
 * can hold the event loop past 50 ms, and a call that times out fails open; the tests check
 * that none did.
 */
const state = (extra: Parameters<typeof redisState>[1] = {}) =>
  redisState(redis.url, { timeoutMs: 2000, ...extra });

/** Calls whose limits could not be checked, by the replica's metrics. */
async function unchecked(url: string): Promise<string[]> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text.split("\n").filter((l) => l.startsWith("coze_gateway_limits_unchecked_total{"));
}

/** The outcome of `n` chat requests of `key`, sent at once and spread over `urls` in turn. */
async function spread(urls: string[], key: string, n: number): Promise<Response[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => chat(urls[i % urls.length] ?? "", key)));
}

describe.skipIf(!haveRedis)(`replicas on one Redis${redisSkipReason}`, () => {
  it("let exactly 10 of 30 requests through for a key with 10 requests per minute", async () => {
    replicas = await startReplicas({
      count: 3,
      keys: [testKey("ten", { requestsPerMinute: 10 })],
      state: state(),
      limitsClock: clockAhead(),
    });
    await replicas.ready("redis");
    const answers = await spread(replicas.urls, replicas.key("ten"), 30);
    const statuses = answers.map((r) => r.status);
    for (const url of replicas.urls) expect(await unchecked(url)).toEqual([]);
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(20);
    const refused = answers.find((r) => r.status === 429);
    expect(refused && limitHeaders(refused)).toEqual({
      "retry-after": "6",
      "x-ratelimit-limit-requests": "10",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1m0s",
    });
    const bodies = await Promise.all(answers.map((r) => r.json()));
    expect(bodies[answers.indexOf(refused as Response)]).toEqual({
      error: {
        message: "rate limit reached: 10 requests per minute for this API key; try again in 6s",
        type: "requests",
        code: "rate_limit_exceeded",
        param: null,
      },
    });
  });

  it("hold a key to its streams open at once across replicas", async () => {
    const clock = clockAhead();
    replicas = await startReplicas({
      count: 2,
      keys: [testKey("one-stream", { maxStreams: 1 })],
      state: state(),
      limitsClock: clock,
    });
    await replicas.ready("redis");
    const [a = "", b = ""] = replicas.urls;
    const key = replicas.key("one-stream");
    const slow = new AbortController();
    const open = await slowStream(a, key, slow.signal);
    expect(open.status).toBe(200);
    const refused = await chat(b, key);
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({
      error: { code: "too_many_streams", type: "rate_limit_error" },
    });
    slow.abort();
    await open.body?.cancel().catch(() => {});
    // The slot comes back once the stream's response closed on replica a (real I/O: bounded
    // polling) and a's release went out, flush_ms later by a's clock.
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      await clock.advance(50);
      const res = await chat(b, key);
      status = res.status;
      await res.body?.cancel();
      if (status !== 200) await new Promise((r) => setTimeout(r, 10));
    }
    expect(status).toBe(200);
  });

  it("cost one Redis round trip per request without shares, token counts riding along", async () => {
    replicas = await startReplicas({
      count: 1,
      keys: [testKey("counted", { requestsPerMinute: 100, tokensPerMinute: 100_000 })],
      state: state({ share: 0 }),
      limitsClock: clockAhead(),
    });
    await replicas.ready("redis");
    const [url = ""] = replicas.urls;
    const key = replicas.key("counted");
    const used = async (res: Response) =>
      ((await res.json()) as { usage: { total_tokens: number } }).usage.total_tokens;
    const tokens = [await used(await chat(url, key))];
    const commands = await monitorCommands(redis);
    try {
      const remaining: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await chat(url, key, `Hello number ${i}`);
        remaining.push(Number(res.headers.get("x-ratelimit-remaining-tokens")));
        tokens.push(await used(res));
      }
      await commands.settle();
      expect(commands.count("evalsha")).toBe(5);
      expect(commands.count("eval")).toBe(0);
      // Every Redis command of those requests was that one script.
      const others = [...["get", "set", "incrby", "zadd", "multi", "exec", "ping"]];
      expect(others.map((c) => commands.count(c))).toEqual(others.map(() => 0));
      // Each answer's figures count the tokens Coze reported for every request before it.
      expect(remaining).toEqual(
        remaining.map((_, i) => 100_000 - tokens.slice(0, i + 1).reduce((a, b) => a + b, 0)),
      );
    } finally {
      commands.close();
    }
  });

  it("admit calls from shares taken ahead: 4 round trips for 40 calls, every figure exact", async () => {
    replicas = await startReplicas({
      count: 1,
      keys: [testKey("shared", { requestsPerMinute: 6400, tokensPerMinute: 1_000_000 })],
      state: state(),
      limitsClock: clockAhead(),
    });
    await replicas.ready("redis");
    const [url = ""] = replicas.urls;
    const key = replicas.key("shared");
    const tokensOf = async (res: Response) =>
      ((await res.json()) as { usage: { total_tokens: number } }).usage.total_tokens;
    const tokens = [await tokensOf(await chat(url, key))];
    const commands = await monitorCommands(redis);
    try {
      const figures: [number, number][] = [];
      for (let i = 0; i < 40; i++) {
        const res = await chat(url, key, `Hello number ${i}`);
        figures.push([
          Number(res.headers.get("x-ratelimit-remaining-requests")),
          Number(res.headers.get("x-ratelimit-remaining-tokens")),
        ]);
        tokens.push(await tokensOf(res));
      }
      await commands.settle();
      // Call 2 takes a share of 4 in its own round trip; the share is topped up ahead by 8 at call
      // 5, 16 at call 12 and 32 at call 26, each time a quarter of it is left.
      expect(commands.count("evalsha")).toBe(4);
      // Each answer counts every request before it and itself, and every token before it, as if
      // each had asked Redis.
      expect(figures).toEqual(
        figures.map((_, i) => [
          6400 - (i + 2),
          1_000_000 - tokens.slice(0, i + 1).reduce((a, b) => a + b, 0),
        ]),
      );
    } finally {
      commands.close();
    }
  });

  it("keep a busy key's stream slots between its calls: 40 calls take 32 slots, given back once idle", async () => {
    const clock = clockAhead();
    const st = state();
    replicas = await startReplicas({
      count: 1,
      keys: [testKey("busy", { requestsPerMinute: 6400, maxStreams: 1024 })],
      state: st,
      limitsClock: clock,
    });
    await replicas.ready("redis");
    const [url = ""] = replicas.urls;
    const key = replicas.key("busy");
    const slots = `${st.prefix}st:busy`;
    const commands = await monitorCommands(redis);
    try {
      for (let i = 0; i < 40; i++) {
        const res = await chat(url, key);
        expect(res.status).toBe(200);
        await res.body?.cancel();
      }
      await commands.settle();
      // The same 4 round trips as without streams. Calls 1 and 2 took a slot each; the shares of
      // 4, 8, 16 and 32 took the slots they lacked (4, 4, 8, 16): every later call took one and
      // gave it back to the share, nothing to Redis. (Without kept slots: 62 taken, one per call
      // given back.)
      expect(commands.count("evalsha")).toBe(4);
      expect(commands.scripted(slots, "zadd")).toBe(2 + 32);
      // Call 1's and call 2's, riding along with the next round trips.
      expect(commands.scripted(slots, "zrem")).toBe(2);
      expect(await redis.client().zcard(slots)).toBe(32);
      // Idle: flush_ms later the last calls' usage goes out, and the share expires; its 32 slots
      // go back in the round trip after.
      for (let i = 0; i < 100 && (await redis.client().zcard(slots)) > 0; i++) {
        await clock.advance(50);
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(await redis.client().zcard(slots)).toBe(0);
      await commands.settle();
      expect(commands.scripted(slots, "zrem")).toBe(2 + 32);
      expect(commands.count("evalsha")).toBe(6);
    } finally {
      commands.close();
    }
  });

  it("keep serving while Redis is down (fail open), say so, and count again once it is back", async () => {
    replicas = await startReplicas({
      count: 1,
      keys: [testKey("two", { requestsPerMinute: 2 })],
      state: state(),
      limitsClock: clockAhead(),
    });
    await replicas.ready("redis");
    const [url = ""] = replicas.urls;
    const key = replicas.key("two");
    const statuses = async (n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const res = await chat(url, key);
        out.push(res.status);
        await res.body?.cancel();
      }
      return out;
    };
    expect(await statuses(3)).toEqual([200, 200, 429]);
    await redis.stop();
    try {
      const ready = await readyWith(url, "redis unreachable");
      expect(ready.status).toBe("ready");
      expect(ready.state).toMatch(/^redis unreachable since .+; limits fail open$/);
      const started = performance.now();
      const answers = await Promise.all(Array.from({ length: 5 }, () => chat(url, key)));
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      // No figures are known: none are sent rather than wrong ones.
      expect(limitHeaders(answers[0] as Response)).toEqual({});
      await Promise.all(answers.map((r) => r.text()));
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toContain("coze_gateway_state_up 0");
      expect(metrics).toMatch(/coze_gateway_limits_unchecked_total\{mode="open"\} [5-9]/);
      const warnings = replicas.logs[0]?.lines().filter((l) => l.level === "warn");
      expect(warnings?.map((l) => l.msg)).toContain("state store unreachable; limits fail open");
    } finally {
      await redis.start();
    }
    await readyWith(url, "redis");
    // A fresh Redis counts from zero.
    expect(await statuses(3)).toEqual([200, 200, 429]);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain("coze_gateway_state_up 1");
  });

  it("refuse a limited key's calls while Redis is down when told to fail closed", async () => {
    replicas = await startReplicas({
      count: 1,
      keys: [testKey("strict", { requestsPerMinute: 5 }), testKey("free")],
      state: state({ fail: "closed" }),
      limitsClock: clockAhead(),
    });
    await replicas.ready("redis");
    const [url = ""] = replicas.urls;
    await redis.stop();
    try {
      await readyWith(url, "redis unreachable");
      const refused = await chat(url, replicas.key("strict"));
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).toBe("1");
      expect(await refused.json()).toEqual({
        error: {
          message: "limits cannot be checked: the shared state store is unreachable",
          type: "server_error",
          code: "unavailable",
          param: null,
        },
      });
      // A key without limits has nothing to check.
      const free = await chat(url, replicas.key("free"));
      expect(free.status).toBe(200);
      await free.text();
    } finally {
      await redis.start();
    }
  });

  it("never wait on a Redis that does not answer longer than timeout_ms", async () => {
    replicas = await startReplicas({
      count: 1,
      keys: [testKey("patient", { requestsPerMinute: 100 })],
      state: state({ timeoutMs: 100 }),
      limitsClock: clockAhead(),
    });
    await replicas.ready("redis");
    const [url = ""] = replicas.urls;
    redis.pause();
    try {
      const started = performance.now();
      const res = await chat(url, replicas.key("patient"));
      const elapsed = performance.now() - started;
      expect(res.status).toBe(200);
      await res.text();
      // The chat itself takes a few ms against the emulator; the wait for Redis at most 100.
      expect(elapsed).toBeLessThan(1_000);
      expect(elapsed).toBeGreaterThanOrEqual(100);
    } finally {
      redis.resume();
    }
  });
});
