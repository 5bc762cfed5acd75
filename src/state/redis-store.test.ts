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
import { storeSteps } from "../../test/support/state-ops.js";
import { createMemoryStore } from "./memory-store.js";
import { createRedisStore } from "./redis-store.js";
import {
  type BudgetOp,
  type OpResult,
  type RateOp,
  StateError,
  type StateHealth,
  type StateOp,
  type StateStore,
} from "./state-store.js";

// What only the Redis store does: give the memory store's results over one round trip per
// batch, and keep going while Redis is away. The behaviour both stores share is tested in
// state-store.test.ts.

let redis: RedisServer | undefined;
beforeAll(async () => {
  if (haveRedis) redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.close();
});

/** A clock ahead of the real one: Redis expires budgets at their period's end by its own. */
const start = Math.ceil(Date.now() / 60_000) * 60_000 + 3_600_000;

const make = (clock: ManualClock): StateStore =>
  createRedisStore({
    url: redis?.url ?? "",
    timeoutMs: 1000,
    prefix: `t${Math.random().toString(36).slice(2)}:`,
    flushMs: 50,
    clock,
  });

const opened: StateStore[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});

/** Waits (bounded) until `check` holds, polling real time: Redis I/O is not the clock's. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting until ${what}`);
}

/** A store that is connected. */
async function open(clock = createManualClock(start)): Promise<StateStore> {
  const store = make(clock);
  opened.push(store);
  await until(() => store.health().ok, "connected");
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

describe.skipIf(!haveRedis)(`the redis store${redisSkipReason}`, () => {
  it("gives the memory store's results for any sequence of operations and admissions", async () => {
    const client = redis?.client();
    await fc.assert(
      fc.asyncProperty(storeSteps(start + 86_400_000), async (steps) => {
        await client?.flushall();
        const memoryClock = createManualClock(start);
        const redisClock = createManualClock(start);
        const memory = createMemoryStore({ now: memoryClock.now });
        const shared = await open(redisClock);
        for (const { advanceMs, ops, gates } of steps) {
          await memoryClock.advance(advanceMs);
          await redisClock.advance(advanceMs);
          if (gates !== undefined) expect(await shared.admit(gates)).toEqual(memory.admit(gates));
          else expect(await shared.run(ops)).toEqual(memory.run(ops));
        }
        await shared.close();
      }),
      { numRuns: 25 },
    );
  });

  it("keeps two replicas' slots apart, though each numbers its holders from the same start", async () => {
    const prefix = `t${Math.random().toString(36).slice(2)}:`;
    const clock = createManualClock(start);
    const replica = async () => {
      const store = createRedisStore({
        url: redis?.url ?? "",
        timeoutMs: 1000,
        prefix,
        flushMs: 50,
        clock,
      });
      opened.push(store);
      await until(() => store.health().ok, "connected");
      return store;
    };
    const [a, b] = [await replica(), await replica()];
    const slot = (mode: "acquire" | "release" | "renew", holder: number): StateOp => ({
      kind: "slots",
      key: "st:alice",
      mode,
      max: 2,
      holder,
      ttlMs: 10_000,
    });
    const [ha, hb] = [a.holder(), b.holder()];
    expect(hb).toBe(ha);
    expect((await a.run([slot("acquire", ha)]))[0]).toMatchObject({ allowed: true, used: 1 });
    expect((await b.run([slot("acquire", hb)]))[0]).toMatchObject({ allowed: true, used: 2 });
    expect((await a.run([slot("acquire", a.holder())]))[0]?.allowed).toBe(false);
    // b gives its slot back: a's stays held.
    expect((await b.run([slot("release", hb)]))[0]?.used).toBe(1);
    expect((await a.run([slot("renew", ha)]))[0]?.used).toBe(1);
  });

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
    const store = await open(clock);
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

  it("sends the batches asked for together in one round trip, each judged as if alone", async () => {
    if (redis === undefined) return;
    const store = await open();
    const commands = await monitorCommands(redis);
    try {
      await run(store, [rpm("check", "rq:gil")]);
      await commands.settle();
      commands.reset();
      const tpm: RateOp = { ...rpm("check", "tm:gil"), limit: 1000 };
      store.defer([{ ...tpm, mode: "add", cost: 999 }]);
      // Three requests arrive together: 2 requests a minute let the first two through; the
      // third is refused and takes nothing; each sees the tokens the deferred add counted.
      const take = { ...rpm("take", "rq:gil"), limit: 2 };
      const results = await Promise.all([
        run(store, [take, tpm]),
        run(store, [take, tpm]),
        run(store, [take, tpm]),
      ]);
      expect(results.map((r) => r.map((x) => x.allowed))).toEqual([
        [true, true],
        [true, true],
        [false, true],
      ]);
      expect(results.map((r) => r[0]?.remaining)).toEqual([1, 0, 0]);
      expect(results.map((r) => r[1]?.used)).toEqual([999, 999, 999]);
      // A gate refused in one batch does not undo another's: the refused one wrote nothing.
      expect((await run(store, [{ ...take, mode: "check" }]))[0]?.used).toBe(2);
      await commands.settle();
      expect(commands.count("evalsha")).toBe(2);
    } finally {
      commands.close();
    }
  });

  it("fails every batch of a round trip Redis did not answer", async () => {
    if (redis === undefined) return;
    const store = createRedisStore({
      url: redis.url,
      timeoutMs: 100,
      prefix: "both:",
      flushMs: 50,
      clock: createManualClock(start),
    });
    opened.push(store);
    await until(() => store.health().ok, "connected");
    redis.pause();
    try {
      const failed = await Promise.all([
        rejection(store.run([rpm("take")])),
        rejection(store.run([rpm("check")])),
      ]);
      expect(failed.map((e) => e.code)).toEqual(["timeout", "timeout"]);
      expect(store.health().ok).toBe(false);
    } finally {
      redis.resume();
    }
    await until(async () => {
      try {
        await store.run([rpm("check")]);
        return true;
      } catch {
        return false;
      }
    }, "answers again");
  });

  it("lets a write deferred after a batch wait its own flush_ms: steady traffic sends nothing alone", async () => {
    if (redis === undefined) return;
    const clock = createManualClock(start);
    const store = await open(clock);
    const commands = await monitorCommands(redis);
    try {
      const used: BudgetOp = {
        kind: "budget",
        key: "u:fay",
        mode: "check",
        limit: 0,
        cost: 0,
        periodEndMs: start + 86_400_000,
      };
      await run(store, [used]);
      await commands.settle();
      commands.reset();
      // One request every 20 ms, each deferring its tokens after its batch: every deferred write
      // rides along with the next request's batch.
      for (let i = 0; i < 10; i++) {
        await run(store, [rpm("take", "rq:fay"), used]);
        store.defer([{ ...used, mode: "add", cost: 1 }]);
        await clock.advance(20);
      }
      await commands.settle();
      expect(commands.count("evalsha")).toBe(10);
      // The last one, deferred at 180 ms, has no batch to ride along with: it goes out alone at
      // 230 ms, not when the timer started for the first one's wait runs out.
      await clock.advance(29);
      await commands.settle();
      expect(commands.count("evalsha")).toBe(10);
      await clock.advance(1);
      await until(async () => {
        await commands.settle();
        return commands.count("evalsha") === 11;
      }, "the flush");
      expect((await run(store, [used]))[0]?.used).toBe(10);
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
