import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createManualClock, type ManualClock } from "../../test/support/manual-clock.js";
import {
  haveRedis,
  monitorCommands,
  type RedisServer,
  redisSkipReason,
  startRedisServer,
} from "../../test/support/redis-server.js";
import { createMemoryStore } from "./memory-store.js";
import { createRedisStore } from "./redis-store.js";
import {
  type OpResult,
  type RateOp,
  StateError,
  type StateHealth,
  type StateOp,
  type StateStore,
} from "./state-store.js";

// The same behaviour from both stores: the memory store's arithmetic (counter-math.ts) and the
// Redis store's Lua (batch-script.ts) must agree to the unit and the millisecond.

let redis: RedisServer | undefined;
beforeAll(async () => {
  if (haveRedis) redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.close();
});

/**
 * A clock ahead of the real one: budgets expire at their period's end by Redis's own clock, so
 * the manual time must not lie in the past.
 */
const start = Math.ceil(Date.now() / 60_000) * 60_000 + 3_600_000;

type Make = (clock: ManualClock) => StateStore;
const stores: [string, Make][] = [["memory", (clock) => createMemoryStore({ now: clock.now })]];
if (haveRedis) {
  stores.push([
    "redis",
    (clock) =>
      createRedisStore({
        url: redis?.url ?? "",
        timeoutMs: 1000,
        prefix: `t${Math.random().toString(36).slice(2)}:`,
        flushMs: 50,
        clock,
      }),
  ]);
}

const opened: StateStore[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});

/** A store that answers (Redis: connected). */
async function open(make: Make, clock = createManualClock(start)): Promise<StateStore> {
  const store = make(clock);
  opened.push(store);
  for (let i = 0; i < 200 && !store.health().ok; i++) await new Promise((r) => setTimeout(r, 10));
  expect(store.health().ok).toBe(true);
  return store;
}

const rpm = (mode: RateOp["mode"], key = "rq:alice", cost = 1): RateOp => ({
  kind: "rate",
  key,
  mode,
  limit: 10,
  windowMs: 60_000,
  cost,
});

async function run(store: StateStore, ops: StateOp[]): Promise<readonly OpResult[]> {
  return await store.run(ops);
}

describe.each(stores)("the %s store", (_name, make) => {
  it("takes 10 requests per minute at once, then refuses with the wait until one is back", async () => {
    const clock = createManualClock(start);
    const store = await open(make, clock);
    const remaining: number[] = [];
    for (let i = 0; i < 10; i++) {
      const [r] = await run(store, [rpm("take")]);
      expect(r?.allowed).toBe(true);
      remaining.push(r?.remaining ?? -1);
    }
    expect(remaining).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    const [refused] = await run(store, [rpm("take")]);
    expect(refused).toEqual({
      allowed: false,
      used: 10,
      remaining: 0,
      resetMs: 60_000,
      retryAfterMs: 6_000,
    });
    await clock.advance(5_999);
    expect((await run(store, [rpm("take")]))[0]?.allowed).toBe(false);
    await clock.advance(1);
    const [back] = await run(store, [rpm("take")]);
    expect(back).toMatchObject({ allowed: true, remaining: 0, resetMs: 60_000 });
    await clock.advance(60_000);
    expect((await run(store, [rpm("check")]))[0]).toMatchObject({ remaining: 10, resetMs: 0 });
  });

  it("writes none of a batch's gates when one refuses", async () => {
    const store = await open(make);
    const tokens: RateOp = { ...rpm("add", "tm:alice", 100), limit: 100 };
    await run(store, [tokens]);
    const [requests, over] = await run(store, [rpm("take"), { ...tokens, mode: "check" }]);
    expect(over).toMatchObject({ allowed: false, remaining: 0, retryAfterMs: 600 });
    // The request was not counted: its figures are those before it.
    expect(requests).toMatchObject({ allowed: true, remaining: 10, resetMs: 0 });
    expect((await run(store, [rpm("check")]))[0]?.remaining).toBe(10);
  });

  it("counts tokens after the fact, past the limit, and refuses until they drained", async () => {
    const clock = createManualClock(start);
    const store = await open(make, clock);
    const tpm: RateOp = { ...rpm("check", "tm:bob"), limit: 1000 };
    expect((await run(store, [tpm]))[0]).toMatchObject({ allowed: true, remaining: 1000 });
    await run(store, [{ ...tpm, mode: "add", cost: 1500 }]);
    const [over] = await run(store, [tpm]);
    // 1500 of 1000 used: 501 tokens must drain (at 1000 per minute) before one is left.
    expect(over).toEqual({
      allowed: false,
      used: 1500,
      remaining: 0,
      resetMs: 90_000,
      retryAfterMs: 30_060,
    });
    await clock.advance(30_060);
    expect((await run(store, [tpm]))[0]).toMatchObject({ allowed: true, remaining: 1 });
  });

  it("keeps a budget per period: checked against its limit, fresh in the next period", async () => {
    const clock = createManualClock(start);
    const store = await open(make, clock);
    const end = start + 86_400_000;
    const budget = (mode: "check" | "add", cost = 0, key = "u:d1:alice") =>
      ({ kind: "budget", key, mode, limit: 100, cost, periodEndMs: end }) as const;
    expect((await run(store, [budget("add", 60)]))[0]).toMatchObject({ used: 60, remaining: 40 });
    expect((await run(store, [budget("check")]))[0]).toEqual({
      allowed: true,
      used: 60,
      remaining: 40,
      resetMs: 86_400_000,
      retryAfterMs: 0,
    });
    await run(store, [budget("add", 50)]);
    await clock.advance(1000);
    expect((await run(store, [budget("check")]))[0]).toEqual({
      allowed: false,
      used: 110,
      remaining: 0,
      resetMs: 86_399_000,
      retryAfterMs: 86_399_000,
    });
    expect((await run(store, [budget("check", 0, "u:d2:alice")]))[0]).toMatchObject({
      allowed: true,
      used: 0,
    });
  });

  it("holds slots up to their max, frees them on release, and lets them expire", async () => {
    const clock = createManualClock(start);
    const store = await open(make, clock);
    const slot = (mode: "acquire" | "release" | "renew", holder: string) =>
      ({ kind: "slots", key: "st:alice", mode, max: 2, holder, ttlMs: 10_000 }) as const;
    expect((await run(store, [slot("acquire", "a")]))[0]).toMatchObject({
      allowed: true,
      used: 1,
      remaining: 1,
    });
    await run(store, [slot("acquire", "b")]);
    expect((await run(store, [slot("acquire", "c")]))[0]).toMatchObject({
      allowed: false,
      used: 2,
      retryAfterMs: 1000,
    });
    await run(store, [slot("release", "a")]);
    expect((await run(store, [slot("acquire", "c")]))[0]?.allowed).toBe(true);
    await clock.advance(6_000);
    await run(store, [slot("renew", "c")]);
    await clock.advance(5_000);
    // b expired (taken 11 s ago); c was renewed 5 s ago.
    expect((await run(store, [slot("acquire", "d")]))[0]).toMatchObject({ allowed: true, used: 2 });
    expect((await run(store, [slot("acquire", "e")]))[0]?.allowed).toBe(false);
  });

  it("keeps values and leases", async () => {
    const store = await open(make);
    expect(await store.get("kv:x")).toBeUndefined();
    await store.set("kv:x", "one", 60_000);
    expect(await store.get("kv:x")).toBe("one");
    expect(await store.setIfAbsent("kv:x", "two", 60_000)).toBe(false);
    expect(await store.setIfAbsent("kv:y", "two", 60_000)).toBe(true);
    await store.delete("kv:x");
    expect(await store.get("kv:x")).toBeUndefined();

    expect(await store.lease("poll:run1", "replica-a", 5_000)).toBe(true);
    expect(await store.lease("poll:run1", "replica-b", 5_000)).toBe(false);
    expect(await store.lease("poll:run1", "replica-a", 5_000)).toBe(true);
    await store.releaseLease("poll:run1", "replica-b");
    expect(await store.lease("poll:run1", "replica-b", 5_000)).toBe(false);
    await store.releaseLease("poll:run1", "replica-a");
    expect(await store.lease("poll:run1", "replica-b", 5_000)).toBe(true);
  });

  it("applies deferred writes before the next batch's gates", async () => {
    const clock = createManualClock(start);
    const store = await open(make, clock);
    const tpm: RateOp = { ...rpm("check", "tm:carol"), limit: 100 };
    store.defer([{ ...tpm, mode: "add", cost: 60 }]);
    store.defer([{ ...tpm, mode: "add", cost: 40 }]);
    expect(() => store.defer([rpm("take")])).not.toThrow();
    expect((await run(store, [tpm]))[0]).toMatchObject({ allowed: false, used: 100 });
    // The gate given to defer was ignored: no request was counted.
    expect((await run(store, [rpm("check")]))[0]?.remaining).toBe(10);
  });
});

describe.skipIf(!haveRedis)(`the redis store${redisSkipReason}`, () => {
  const make = stores.find(([name]) => name === "redis")?.[1] as Make;

  it("gives the memory store's results for any sequence of operations", async () => {
    const client = redis?.client();
    // A counter keeps its limit and window, as a key's limits do.
    const rates = [
      { key: "r1", limit: 7, windowMs: 60_000 },
      { key: "r2", limit: 10, windowMs: 60_000 },
      { key: "r3", limit: 1000, windowMs: 86_400_000 },
    ];
    const op = fc.oneof(
      fc
        .record({
          rate: fc.constantFrom(...rates),
          mode: fc.constantFrom("take" as const, "check" as const, "add" as const),
          cost: fc.integer({ min: 1, max: 400 }),
        })
        .map(({ rate, mode, cost }): RateOp => ({ kind: "rate", ...rate, mode, cost })),
      fc.record({
        kind: fc.constant("budget" as const),
        key: fc.constantFrom("b1", "b2"),
        mode: fc.constantFrom("check" as const, "add" as const),
        limit: fc.constantFrom(0, 500),
        cost: fc.integer({ min: 0, max: 300 }),
        periodEndMs: fc.constant(start + 86_400_000),
      }),
      fc.record({
        kind: fc.constant("slots" as const),
        key: fc.constant("s1"),
        mode: fc.constantFrom("acquire" as const, "release" as const, "renew" as const),
        max: fc.constant(2),
        holder: fc.constantFrom("a", "b", "c"),
        ttlMs: fc.constant(20_000),
      }),
    );
    const step = fc.record({
      advanceMs: fc.integer({ min: 0, max: 9_000 }),
      ops: fc.array(op, { minLength: 1, maxLength: 4 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        await client?.flushall();
        const memoryClock = createManualClock(start);
        const redisClock = createManualClock(start);
        const memory = createMemoryStore({ now: memoryClock.now });
        const shared = await open(make, redisClock);
        for (const { advanceMs, ops } of steps) {
          await memoryClock.advance(advanceMs);
          await redisClock.advance(advanceMs);
          expect(await shared.run(ops)).toEqual(memory.run(ops));
        }
        await shared.close();
      }),
      { numRuns: 25 },
    );
  });

  /** Waits (bounded) until `check` holds, polling real time: Redis I/O is not the clock's. */
  async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
    for (let i = 0; i < 500; i++) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`timed out waiting until ${what}`);
  }

  function rejection(p: unknown): Promise<StateError> {
    return Promise.resolve(p).then(
      () => expect.fail("the call succeeded"),
      (e: unknown) => {
        expect(e).toBeInstanceOf(StateError);
        return e as StateError;
      },
    );
  }

  it("sends a batch with the deferred writes in one round trip, and them alone after flush_ms", async () => {
    if (redis === undefined) return;
    const clock = createManualClock(start);
    const store = await open(make, clock);
    const commands = await monitorCommands(redis);
    try {
      // The first call loads the script (EVALSHA answered NOSCRIPT, then EVAL).
      await run(store, [rpm("check")]);
      await commands.settle();
      commands.reset();
      const tpm: RateOp = { ...rpm("check", "tm:dave"), limit: 1000 };
      store.defer([{ ...tpm, mode: "add", cost: 10 }]);
      store.defer([{ ...tpm, mode: "add", cost: 20 }]);
      for (let i = 0; i < 5; i++) await run(store, [rpm("take"), tpm]);
      await commands.settle();
      expect(commands.count("evalsha")).toBe(5);
      expect(commands.count("eval")).toBe(0);
      expect((await run(store, [tpm]))[0]?.used).toBe(30);

      await commands.settle();
      commands.reset();
      store.defer([{ ...tpm, mode: "add", cost: 5 }]);
      await clock.advance(49);
      await commands.settle();
      expect(commands.count("evalsha")).toBe(0);
      await clock.advance(1);
      await until(async () => {
        await commands.settle();
        return commands.count("evalsha") === 1;
      }, "the flush");
      expect((await run(store, [tpm]))[0]?.used).toBe(35);
    } finally {
      commands.close();
    }
  });

  it("fails at once while Redis is down, reconnects by itself and sends what waited", async () => {
    if (redis === undefined) return;
    const server = redis;
    const changes: StateHealth[] = [];
    const clock = createManualClock(start);
    const store = createRedisStore({
      url: server.url,
      timeoutMs: 1000,
      prefix: "down:",
      flushMs: 50,
      clock,
      onHealth: (h) => changes.push(h),
    });
    opened.push(store);
    await until(() => store.health().ok, "connected");
    const tpm: RateOp = { ...rpm("check", "tm:erin"), limit: 1000 };
    await server.stop();
    try {
      await until(() => !store.health().ok, "the store noticed");
      expect(store.health().detail).toMatch(/^redis unreachable since \d{4}-/);
      const started = performance.now();
      expect((await rejection(store.run([tpm]))).code).toBe("unavailable");
      expect(performance.now() - started).toBeLessThan(100);
      store.defer([{ ...tpm, mode: "add", cost: 7 }]);
      await clock.advance(50);
    } finally {
      await server.start();
    }
    await until(() => store.health().ok, "reconnected");
    expect(changes.map((h) => h.ok)).toEqual([true, false, true]);
    await until(async () => (await store.run([tpm]))[0]?.used === 7, "the deferred add arrived");
  });

  it("fails a command Redis does not answer after timeout_ms, and recovers", async () => {
    if (redis === undefined) return;
    const store = createRedisStore({
      url: redis.url,
      timeoutMs: 100,
      prefix: "slow:",
      flushMs: 50,
      clock: createManualClock(start),
    });
    opened.push(store);
    await until(() => store.health().ok, "connected");
    redis.pause();
    let elapsed: number;
    try {
      const started = performance.now();
      expect((await rejection(store.run([rpm("check")]))).code).toBe("timeout");
      elapsed = performance.now() - started;
      expect(store.health().ok).toBe(false);
    } finally {
      redis.resume();
    }
    expect(elapsed).toBeGreaterThanOrEqual(95);
    expect(elapsed).toBeLessThan(1000);
    await until(async () => {
      try {
        await store.run([rpm("check")]);
        return true;
      } catch {
        return false;
      }
    }, "answers again");
    expect(store.health().ok).toBe(true);
  });
});
