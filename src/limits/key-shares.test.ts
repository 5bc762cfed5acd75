import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { request as newRequest, noLimits as none } from "../../test/support/key-limits.js";
import { createManualClock, type ManualClock } from "../../test/support/manual-clock.js";
import {
  haveRedis,
  type RedisServer,
  redisSkipReason,
  startRedisServer,
} from "../../test/support/redis-server.js";
import type { KeyLimitsConfig } from "../config/index.js";
import { gateOps } from "../state/admission.js";
import { createMemoryStore } from "../state/memory-store.js";
import { createRedisStore } from "../state/redis-store.js";
import type { OpResult, StateOp, StateStore } from "../state/state-store.js";
import type { LimitedRequest } from "./held-slots.js";
import { createKeyLimiter, type KeyLimiter, type Verdict } from "./key-limits.js";

// Local shares (KeyLimiterOptions.share): a replica takes a few requests ahead in the round trip
// of a call and admits the next calls without asking the store. Here on the memory store, with
// every batch counted: the Redis side is in test/limits-replicas.test.ts.

const start = Date.UTC(2025, 0, 15, 12);
const ttlMs = 50;

/** A store that records every batch it runs, and whether it passed (deferred operations apart). */
function counted(
  store: StateStore,
): StateStore & { batches: StateOp[][]; passed: boolean[]; deferred: StateOp[] } {
  const batches: StateOp[][] = [];
  const passed: boolean[] = [];
  const deferred: StateOp[] = [];
  return {
    ...store,
    batches,
    passed,
    deferred,
    run(ops) {
      batches.push([...ops]);
      const results = store.run(ops);
      if (!(results instanceof Promise)) passed.push(results.every((r) => r.allowed));
      return results;
    },
    admit(gates) {
      batches.push(gateOps(gates));
      const admission = store.admit(gates);
      if (!(admission instanceof Promise)) passed.push(admission.allowed);
      return admission;
    },
    defer(ops) {
      deferred.push(...ops);
      store.defer(ops);
    },
  };
}

/** The cost of a rate or budget operation; NaN for slots. */
const cost = (op: StateOp | undefined) =>
  op === undefined || op.kind === "slots" ? Number.NaN : op.cost;

/** Stream slots held on the store now (a renew of nobody's slot reads the count). */
function streams(store: StateStore): number {
  const [r] = store.run([
    { kind: "slots", key: "st:alice", mode: "renew", max: 64, holder: -1, ttlMs: 1 },
  ]) as readonly OpResult[];
  return r?.used ?? -1;
}

/** Whether a batch asks for a share: it takes, checks or acquires more than one call needs. */
const isShare = (batch: readonly StateOp[]) =>
  batch.filter((op) => op.kind === "slots").length > 1 ||
  batch.some((op) => op.kind !== "slots" && op.mode !== "add" && op.cost > 1);

const limiters: KeyLimiter[] = [];
afterEach(() => {
  for (const l of limiters.splice(0)) l.close();
});

function replica(
  limits: Partial<KeyLimitsConfig>,
  store: StateStore,
  clock: ManualClock,
  maxUnits = 16,
): KeyLimiter {
  const limiter = createKeyLimiter({
    keys: [{ name: "alice", limits: { ...none, ...limits } }],
    store,
    fail: "closed",
    clock,
    share: { maxUnits, ttlMs },
  });
  limiters.push(limiter);
  return limiter;
}

/** How many of `n` calls, made one at a time on `replicas` in turn, were admitted. */
async function admittedInTurn(replicas: readonly KeyLimiter[], n: number): Promise<number> {
  let admitted = 0;
  for (let i = 0; i < n; i++)
    if ((await call(replicas[i % replicas.length] as KeyLimiter)).ok) admitted++;
  return admitted;
}

async function call(limiter: KeyLimiter, req: LimitedRequest = newRequest()): Promise<Verdict> {
  const verdict = limiter.admit(req, "alice", true);
  if (verdict === undefined) throw new Error("no verdict");
  return await verdict;
}

/** Requests per minute in use on the store now. */
function used(store: StateStore, limit: number): number {
  const [r] = store.run([
    { kind: "rate", key: "rq:alice", mode: "check", limit, windowMs: 60_000, cost: 1 },
  ]) as readonly OpResult[];
  return r?.used ?? -1;
}

describe("a replica's shares of a key's limits", () => {
  it("admits calls from a share topped up ahead, twice as large each time: 2 round trips of calls for 100", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const limiter = replica({ requestsPerMinute: 640 }, store, clock);
    const remaining: string[] = [];
    for (let i = 0; i < 100; i++) {
      const v = await call(limiter);
      if (!v.ok) throw v.error;
      remaining.push(v.headers["x-ratelimit-remaining-requests"] ?? "");
    }
    // Calls 1 and 2 ask the store, the second taking 4 ahead in a batch of the same turn; from
    // then on every call is admitted here, and the share is topped up (8, then 16, the most)
    // each time a quarter of it is left.
    const calls = store.batches.filter((b) => !isShare(b));
    const shares = store.batches.filter(isShare).map((b) => cost(b[1]));
    expect(calls).toHaveLength(2);
    expect(shares).toEqual([4, 8, 16, 16, 16, 16, 16, 16]);
    // Every call saw what was left for it, as if it had asked the store.
    expect(remaining).toEqual(remaining.map((_, i) => String(640 - (i + 1))));
    // 110 taken, 10 of them still ahead here: they go back when the share's time is up.
    expect(used(store, 640)).toBe(110);
    await clock.advance(ttlMs);
    expect(used(store, 640)).toBe(100);
  });

  it("gives back what a share left unused when it expires, and shrinks the next", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const limiter = replica({ requestsPerMinute: 640, maxStreams: 1000 }, store, clock);
    for (let i = 0; i < 3; i++) expect((await call(limiter)).ok).toBe(true);
    // Two calls asked the store, the third came from a share of 4 (and its 4 slots): 6 counted.
    expect(used(store, 640)).toBe(6);
    await clock.advance(ttlMs);
    // Its 3 unused requests and 3 unused slots went back (and half a request drained meanwhile).
    expect(used(store, 640)).toBe(3);
    const releases = store.deferred.filter((op) => op.kind === "slots" && op.mode === "release");
    expect(releases).toHaveLength(3);
    const back = store.deferred.filter((op) => op.kind === "rate");
    expect(back.map(cost)).toEqual([-3]);
    // The key's next share is 2: half of 4, since most of it went unused.
    await call(limiter);
    await call(limiter);
    expect(cost(store.batches.at(-1)?.[1])).toBe(2);
  });

  it("never takes a share for a key whose calls come further apart than a share lasts", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const limiter = replica({ requestsPerMinute: 6000 }, store, clock);
    for (let i = 0; i < 10; i++) {
      expect((await call(limiter)).ok).toBe(true);
      await clock.advance(ttlMs);
    }
    expect(store.batches).toHaveLength(10);
    expect(store.batches.filter(isShare)).toEqual([]);
    expect(store.deferred).toEqual([]);
  });

  it("counts a small limit call by call: 10 per minute over three replicas admits exactly 10", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const replicas = [0, 1, 2].map(() => replica({ requestsPerMinute: 10 }, store, clock));
    expect(await admittedInTurn(replicas, 30)).toBe(10);
    expect(store.batches.filter(isShare)).toEqual([]);
  });

  it("admits exactly the limit over three replicas taking shares", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const replicas = [0, 1, 2].map(() => replica({ requestsPerMinute: 640 }, store, clock));
    expect(await admittedInTurn(replicas, 900)).toBe(640);
    expect(used(store, 640)).toBe(640);
    // Shares were taken, of at most 16 (the most of this replica; 1/32 of 640 would be 20).
    const shareBatches = store.batches.filter(isShare);
    expect(shareBatches.length).toBeGreaterThan(3);
    expect(Math.max(...shareBatches.map((b) => cost(b[1])))).toBeLessThanOrEqual(16);
    // Nothing left to give back: every share was used up before the key ran out.
    await clock.advance(ttlMs);
    expect(used(store, 640)).toBe(640);
  });

  it("asks for no top-up again for a share's time once one was refused near half the limit", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const limiter = replica({ requestsPerMinute: 640 }, store, clock);
    for (let i = 0; i < 400; i++) expect((await call(limiter)).ok).toBe(true);
    // Shares were topped up until fewer than half would be left; the first top-up refused is the
    // last share asked for while the clock stands still: the calls after it ask one by one.
    const refused = store.batches.filter((b, i) => isShare(b) && !store.passed[i]);
    expect(refused).toHaveLength(1);
    const after = store.batches.slice(store.batches.indexOf(refused[0] as StateOp[]) + 1);
    expect(after.filter(isShare)).toEqual([]);
    expect(after.length).toBeGreaterThan(50);
    expect(used(store, 640)).toBe(400);
  });

  it("stops admitting from a share once the tokens used here reach its margin", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const limiter = replica({ requestsPerMinute: 6000, tokensPerMinute: 1000 }, store, clock);
    await call(limiter);
    const second = await call(limiter);
    expect(second.ok && second.headers["x-ratelimit-remaining-tokens"]).toBe("1000");
    // The share was taken with 1000 tokens left: it holds while 500 are (a margin of 500).
    expect(store.batches).toHaveLength(3);
    limiter.finish(newRequest(), "alice", 300);
    const third = await call(limiter);
    expect(store.batches).toHaveLength(3);
    expect(third.ok && third.headers["x-ratelimit-remaining-tokens"]).toBe("700");
    limiter.finish(newRequest(), "alice", 300);
    // 600 used of the 500 margin: the next call asks the store, which has the count, and no
    // share is taken with 400 left.
    const fourth = await call(limiter);
    expect(store.batches).toHaveLength(5);
    expect(fourth.ok && fourth.headers["x-ratelimit-remaining-tokens"]).toBe("400");
    // Refused shares are not asked for again before a share's time passed.
    await call(limiter);
    expect(store.batches.filter(isShare)).toHaveLength(2);
    expect(store.batches).toHaveLength(6);
  });

  it("hands out the share's stream slots and frees each when its call finished", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const limiter = replica({ maxStreams: 64 }, store, clock);
    const open: LimitedRequest[] = [];
    for (let i = 0; i < 4; i++) {
      const request = newRequest();
      expect((await call(limiter, request)).ok).toBe(true);
      open.push(request);
    }
    // 64 streams allow shares of 2: calls 1 and 2 asked the store, 3 and 4 came from the share,
    // topped up by 2 more requests at the last. Its two slots are with calls 3 and 4, which
    // give them back: the top-up took one slot only, which checks that half the streams are free.
    expect(store.batches).toHaveLength(4);
    expect(store.batches.map((b) => b.filter((op) => op.kind === "slots").length)).toEqual([
      1, 1, 2, 1,
    ]);
    const held = () => streams(store);
    expect(held()).toBe(5);
    // The first two finished calls' slots stay with the share (two at most); the others go back.
    for (const request of open) limiter.finish(request, "alice", 0);
    expect(held()).toBe(2);
    await clock.advance(ttlMs);
    expect(held()).toBe(0);
  });

  it("keeps a busy key's stream slots for its next calls: 200 calls one at a time take 1 per top-up once the share is grown", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const limiter = replica({ maxStreams: 1024 }, store, clock);
    for (let i = 0; i < 200; i++) {
      const request = newRequest();
      expect((await call(limiter, request)).ok).toBe(true);
      limiter.finish(request, "alice", 0);
      await clock.advance(1);
    }
    const slotOps = (ops: readonly StateOp[], mode: string) =>
      ops.filter((op) => op.kind === "slots" && op.mode === mode).length;
    // Calls 1 and 2 asked the store, a slot each, and gave it back. The shares of 4, 8 and 16
    // requests took the slots they lacked (4, 4, 8): every later call took one of them and gave
    // it back to the share. Each top-up of 16 (every 12 calls) took one, a share's check that
    // half the streams are free, one too many, given back by the next call.
    const acquired = store.batches.map((b) => slotOps(b, "acquire"));
    expect(acquired.slice(0, 5)).toEqual([1, 1, 4, 4, 8]);
    const topUps = acquired.slice(5);
    expect(topUps.length).toBe(11);
    expect(topUps.every((n) => n === 1)).toBe(true);
    // Once the share is grown, 1 slot taken from the store and 1 given back per 12 calls (without
    // kept slots, each call took one and gave one back).
    expect(slotOps(store.deferred, "release")).toBe(2 + 11);
    expect(streams(store)).toBe(16);
    // Idle, the share expires and gives its slots back.
    await clock.advance(ttlMs);
    expect(streams(store)).toBe(0);
  });

  it("counts only the slots it lent as out: a call admitted by the store that finishes does not make the next top-up take more", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const limiter = replica({ maxStreams: 1024 }, store, clock);
    const slotOps = (ops: readonly StateOp[]) =>
      ops.filter((op) => op.kind === "slots" && op.mode === "acquire").length;
    // Calls 1 and 2 ask the store, a slot each, and stay open; the second's round trip takes a
    // share of 4 requests and 4 slots. Call 3 takes one of them and stays open too.
    const open = [newRequest(), newRequest(), newRequest()];
    for (const request of open) {
      expect((await call(limiter, request)).ok).toBe(true);
      await clock.advance(1);
    }
    expect(store.batches.map(slotOps)).toEqual([1, 1, 4]);
    // Calls 1 and 2 finish: their slots, the store's, were never the share's. The share keeps
    // the first (it has room for one) and the second goes back; call 3's is still lent.
    limiter.finish(open[0], "alice", 0);
    limiter.finish(open[1], "alice", 0);
    // Calls 4 and 5, one at a time, bring the share down to a quarter. At call 5 the share
    // keeps 3 slots and has lent 2 (calls 3 and 5): the top-up of 8 takes the 3 it lacks.
    // Counted as a number, calls 1 and 2 would have cancelled call 3's loan: 4.
    for (let i = 0; i < 2; i++) {
      const request = newRequest();
      expect((await call(limiter, request)).ok).toBe(true);
      limiter.finish(request, "alice", 0);
      await clock.advance(1);
    }
    expect(store.batches.map(slotOps)).toEqual([1, 1, 4, 3]);
  });

  it("renews the slots a share keeps: they outlive a slot's lifetime while the key is busy", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const limiter = replica({ maxStreams: 1024 }, store, clock, 4);
    // A call every 10 ms for 150 s, each finished before the next: the shares of 4 are topped up
    // before they lasted 50 ms. Each top-up takes one slot, handed to the next call and given
    // back after it; three of the four the first share took stay with the shares that follow.
    const first: number[] = [];
    for (let t = 0; t < 150_000; t += 10) {
      const request = newRequest();
      expect((await call(limiter, request)).ok).toBe(true);
      limiter.finish(request, "alice", 0);
      if (first.length === 0 && store.batches.length === 3) {
        for (const op of store.batches[2] ?? []) if (op.kind === "slots") first.push(op.holder);
      }
      await clock.advance(10);
    }
    expect(first).toHaveLength(4);
    // Held for 150 s, past the 120 s a slot lives unless renewed (at 40, 80 and 120 s): the
    // store still counts four, and three of the first were renewed three times each.
    expect(streams(store)).toBe(4);
    const renewals = (holder: number) =>
      store.deferred.filter(
        (op) => op.kind === "slots" && op.mode === "renew" && op.holder === holder,
      ).length;
    expect(first.map(renewals)).toEqual([3, 3, 3, 0]);
  });

  it("takes no share of streams unless half of them stay free after it", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const limiter = replica({ maxStreams: 64 }, store, clock);
    // 30 streams open (none finished): a share of 2 would leave 32 free, so it is taken.
    for (let i = 0; i < 29; i++) await call(limiter);
    const taken = store.batches.filter(isShare).length;
    expect(taken).toBeGreaterThan(0);
    const streamsHeld = () => streams(store);
    // From 31 held on, no share passes: at most 32 are ever held by calls and shares together
    // until the calls ask one by one.
    for (let i = 0; i < 20; i++) await call(limiter);
    await clock.advance(ttlMs);
    expect(streamsHeld()).toBe(49);
    const refusedShares = store.batches.filter(isShare).slice(taken);
    expect(refusedShares.length).toBeGreaterThan(0);
    // Every share asked for once 31 or more were held was refused: the rest were single calls.
    const calls = store.batches.filter((b) => !isShare(b)).length;
    expect(calls).toBeGreaterThanOrEqual(49 - 32);
  });

  it("drops its shares when the keys are reloaded: new limits apply to the next call", async () => {
    const clock = createManualClock(start);
    const store = counted(createMemoryStore({ now: clock.now }));
    const limiter = replica({ requestsPerMinute: 6000 }, store, clock);
    await call(limiter);
    await call(limiter);
    expect(used(store, 6000)).toBe(6);
    limiter.setKeys([{ name: "alice", limits: { ...none, requestsPerMinute: 6 } }]);
    // The 4 unused went back; the new limit of 6 is judged by the store, with 2 in use.
    expect(used(store, 6000)).toBe(2);
    const results = [];
    for (let i = 0; i < 5; i++) results.push((await call(limiter)).ok);
    expect(results).toEqual([true, true, true, true, false]);
  });
});

describe.skipIf(!haveRedis)(`shares on Redis ${redisSkipReason}`, () => {
  let redis: RedisServer | undefined;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.close();
  });

  it("admit exactly the limit over three replicas calling at once", async () => {
    // Ahead of Redis's own clock, which expires the counters.
    const clock = createManualClock(Math.ceil(Date.now() / 60_000) * 60_000 + 3_600_000);
    const prefix = `shares${Math.random().toString(36).slice(2)}:`;
    const stores = [0, 1, 2].map(() =>
      createRedisStore({ url: redis?.url ?? "", timeoutMs: 2000, prefix, flushMs: ttlMs, clock }),
    );
    try {
      for (let i = 0; i < 200 && !stores.every((s) => s.health().ok); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      const replicas = stores.map((store) =>
        replica({ requestsPerMinute: 640, maxStreams: 6400 }, store, clock),
      );
      let admitted = 0;
      // 300 rounds of three calls at once, one per replica: 900 calls for 640 requests.
      for (let round = 0; round < 300; round++) {
        const verdicts = await Promise.all(replicas.map((r) => call(r)));
        admitted += verdicts.filter((v) => v.ok).length;
      }
      expect(admitted).toBe(640);
      const [r] = await (stores[0] as StateStore).run([
        { kind: "rate", key: "rq:alice", mode: "check", limit: 640, windowMs: 60_000, cost: 1 },
      ]);
      expect(r?.used).toBe(640);
    } finally {
      for (const l of limiters.splice(0)) l.close();
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});
