import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createManualClock, type ManualClock } from "../../test/support/manual-clock.js";
import { haveRedis, type RedisServer, startRedisServer } from "../../test/support/redis-server.js";
import { createMemoryStore } from "./memory-store.js";
import { createRedisStore } from "./redis-store.js";
import type { OpResult, RateOp, StateOp, StateStore } from "./state-store.js";

// The same behaviour from both stores: the memory store's arithmetic (counter-math.ts) and the
// Redis store's Lua (batch-script.ts) must agree to the unit and the millisecond. What only the
// Redis store does (round trips, outages) is in redis-store.test.ts.

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
    const [requests, over] = await run(store, [rpm("take"), { ...tokens, mode: "check", cost: 1 }]);
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
    const slot = (mode: "acquire" | "release" | "renew", holder: number) =>
      ({ kind: "slots", key: "st:alice", mode, max: 2, holder, ttlMs: 10_000 }) as const;
    expect((await run(store, [slot("acquire", 1)]))[0]).toMatchObject({
      allowed: true,
      used: 1,
      remaining: 1,
    });
    await run(store, [slot("acquire", 2)]);
    expect((await run(store, [slot("acquire", 3)]))[0]).toMatchObject({
      allowed: false,
      used: 2,
      retryAfterMs: 1000,
    });
    await run(store, [slot("release", 1)]);
    expect((await run(store, [slot("acquire", 3)]))[0]?.allowed).toBe(true);
    await clock.advance(6_000);
    await run(store, [slot("renew", 3)]);
    await clock.advance(5_000);
    // b expired (taken 11 s ago); c was renewed 5 s ago.
    expect((await run(store, [slot("acquire", 4)]))[0]).toMatchObject({ allowed: true, used: 2 });
    expect((await run(store, [slot("acquire", 5)]))[0]?.allowed).toBe(false);
  });

  it("frees each slot exactly when it expires, however the slots before it were renewed or released", async () => {
    const clock = createManualClock(start);
    const store = await open(make, clock);
    const slot = (mode: "acquire" | "release" | "renew", holder: number) =>
      ({ kind: "slots", key: "st:erin", mode, max: 2, holder, ttlMs: 10_000 }) as const;
    await run(store, [slot("acquire", 1)]); // expires at 10 s
    await clock.advance(4_000);
    await run(store, [slot("acquire", 2)]); // expires at 14 s
    await clock.advance(2_000);
    await run(store, [slot("renew", 1)]); // now expires at 16 s
    // 10.5 s: the first expiry once due has passed, and nothing expired.
    await clock.advance(4_500);
    expect((await run(store, [slot("acquire", 3)]))[0]).toMatchObject({
      allowed: false,
      used: 2,
    });
    await clock.advance(3_499);
    expect((await run(store, [slot("acquire", 3)]))[0]?.allowed).toBe(false);
    // 14 s: b's slot is free, to the millisecond; a's is not.
    await clock.advance(1);
    expect((await run(store, [slot("acquire", 3)]))[0]).toMatchObject({
      allowed: true,
      used: 2,
    });
    // After a release, a's renewed slot still expires on time: at 16 s, d's (24 s) does not.
    await run(store, [slot("release", 3)]);
    await run(store, [slot("acquire", 4)]); // expires at 24 s
    await clock.advance(2_000);
    expect((await run(store, [slot("acquire", 5)]))[0]).toMatchObject({
      allowed: true,
      used: 2,
    });
    expect((await run(store, [slot("acquire", 6)]))[0]).toMatchObject({
      allowed: false,
      used: 2,
    });
  });

  it("asks a check for `cost` units, gives units back with a negative add, and counts a batch's acquires together", async () => {
    const clock = createManualClock(start);
    const store = await open(make, clock);
    await run(store, [rpm("take", "rq:dan", 4)]);
    // 6 left: a check for 6 passes, for 7 refuses with the wait until 7 are left (6 s each).
    expect((await run(store, [rpm("check", "rq:dan", 6)]))[0]).toMatchObject({ allowed: true });
    expect((await run(store, [rpm("check", "rq:dan", 7)]))[0]).toMatchObject({
      allowed: false,
      remaining: 6,
      retryAfterMs: 6_000,
    });
    // Three given back: one left in use; more than taken never goes below 0.
    store.defer([rpm("add", "rq:dan", -3)]);
    expect((await run(store, [rpm("check", "rq:dan")]))[0]).toMatchObject({
      used: 1,
      remaining: 9,
    });
    store.defer([rpm("add", "rq:dan", -5)]);
    expect((await run(store, [rpm("check", "rq:dan")]))[0]).toMatchObject({
      used: 0,
      remaining: 10,
    });

    const budget = {
      kind: "budget",
      key: "u:d1:dan",
      limit: 100,
      periodEndMs: start + 86_400_000,
    } as const;
    await run(store, [{ ...budget, mode: "add", cost: 60 }]);
    expect((await run(store, [{ ...budget, mode: "check", cost: 40 }]))[0]?.allowed).toBe(true);
    expect((await run(store, [{ ...budget, mode: "check", cost: 41 }]))[0]?.allowed).toBe(false);
    expect((await run(store, [{ ...budget, mode: "check", cost: 0 }]))[0]?.allowed).toBe(true);

    const slot = (holder: number) =>
      ({ kind: "slots", key: "st:dan", mode: "acquire", max: 3, holder, ttlMs: 10_000 }) as const;
    await run(store, [slot(1)]);
    // Two more fit, three do not: the batch takes none of them.
    const three = await run(store, [slot(2), slot(3), slot(4)]);
    expect(three.map((r) => r.allowed)).toEqual([true, true, false]);
    expect((await run(store, [slot(5), slot(6)])).map((r) => [r.allowed, r.used])).toEqual([
      [true, 2],
      [true, 3],
    ]);
    expect((await run(store, [slot(7)]))[0]).toMatchObject({ allowed: false, used: 3 });
  });

  it("hands out each slot holder once", async () => {
    const store = await open(make);
    const holders = Array.from({ length: 100 }, () => store.holder());
    expect(new Set(holders).size).toBe(100);
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
