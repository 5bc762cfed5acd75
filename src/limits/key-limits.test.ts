import { afterEach, describe, expect, it } from "vitest";
import { request as newRequest, noLimits as none } from "../../test/support/key-limits.js";
import { createManualClock } from "../../test/support/manual-clock.js";
import type { KeyLimitsConfig } from "../config/index.js";
import { GatewayError, type LimitKind } from "../service/index.js";
import { createMemoryStore } from "../state/memory-store.js";
import { type Admission, StateError, type StateStore } from "../state/state-store.js";
import { type LimitedRequest, slotTtlMs } from "./held-slots.js";
import { createKeyLimiter, type KeyLimiter, type Verdict } from "./key-limits.js";
import { periodOf } from "./periods.js";

/** 2025-01-31T23:00:00Z: an hour before both a day and a month end. */
const start = Date.UTC(2025, 0, 31, 23);

const limiters: KeyLimiter[] = [];
afterEach(() => {
  for (const l of limiters.splice(0)) l.close();
});

function setup(limits: Partial<KeyLimitsConfig> | undefined, options: { store?: StateStore } = {}) {
  const clock = createManualClock(start);
  const refused: LimitKind[] = [];
  const unchecked: string[] = [];
  const store = options.store ?? createMemoryStore({ now: clock.now });
  const limiter = createKeyLimiter({
    keys: [
      { name: "alice", limits: limits && { ...none, ...limits } },
      { name: "bob", limits: undefined },
    ],
    store,
    fail: "open",
    clock,
    events: { refused: (k) => refused.push(k), unchecked: (m) => unchecked.push(m) },
  });
  limiters.push(limiter);
  return { clock, limiter, refused, unchecked, store };
}

/** The verdict of one call of `key` (a fresh request object each time). */
async function call(limiter: KeyLimiter, key = "alice", metered = true): Promise<Verdict> {
  const verdict = limiter.admit(newRequest(), key, metered);
  if (verdict === undefined) throw new Error("no verdict");
  return await verdict;
}

function refusal(v: Verdict): GatewayError {
  if (v.ok) return expect.fail("the call was admitted");
  return v.error;
}

describe("a key's limits", () => {
  it("lets a key without limits through without a verdict, and counts its usage", async () => {
    const { limiter } = setup(undefined);
    expect(limiter.admit(newRequest(), "alice", true)).toBeUndefined();
    limiter.finish(newRequest(), "alice", 120);
    limiter.finish(newRequest(), "alice", 30);
    expect(await limiter.usage("alice")).toEqual({
      quota: undefined,
      usedTokens: 150,
      periodEndMs: Date.UTC(2025, 1, 1),
    });
    // Another key's usage is its own.
    expect((await limiter.usage("bob")).usedTokens).toBe(0);
  });

  it("admits 10 requests a minute with their figures, then refuses with OpenAI's words", async () => {
    const { clock, limiter, refused } = setup({ requestsPerMinute: 10 });
    for (let i = 9; i >= 0; i--) {
      expect(await call(limiter)).toEqual({
        ok: true,
        headers: {
          "x-ratelimit-limit-requests": "10",
          "x-ratelimit-remaining-requests": String(i),
          "x-ratelimit-reset-requests": `${(10 - i) * 6}s`.replace("60s", "1m0s"),
        },
      });
    }
    const err = refusal(await call(limiter));
    expect(err.code).toBe("rate_limit_exceeded");
    expect(err.message).toBe(
      "rate limit reached: 10 requests per minute for this API key; try again in 6s",
    );
    expect(err.retryAfterMs).toBe(6000);
    expect(err.limit).toEqual({
      kind: "requests",
      headers: {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
      },
    });
    expect(refused).toEqual(["requests"]);
    await clock.advance(6000);
    expect((await call(limiter)).ok).toBe(true);
  });

  it("counts Coze tokens after each call and refuses the next once over", async () => {
    const { limiter } = setup({ tokensPerMinute: 100, tokensPerDay: 10_000 });
    const first = await call(limiter);
    expect(first).toEqual({
      ok: true,
      headers: {
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "100",
        "x-ratelimit-reset-tokens": "0s",
      },
    });
    limiter.finish(newRequest(), "alice", 70);
    // The figures are those of the token limit closest to refusing.
    expect(await call(limiter)).toMatchObject({
      ok: true,
      headers: { "x-ratelimit-remaining-tokens": "30", "x-ratelimit-reset-tokens": "42s" },
    });
    limiter.finish(newRequest(), "alice", 50);
    const err = refusal(await call(limiter));
    expect(err.code).toBe("rate_limit_exceeded");
    expect(err.limit?.kind).toBe("tokens");
    expect(err.message).toBe(
      "rate limit reached: 100 Coze tokens per minute for this API key; try again in 12.6s",
    );
  });

  it("refuses a key over its quota until the period ends, and says when", async () => {
    const { clock, limiter, refused } = setup({ quota: { tokens: 1000, per: "day" } });
    limiter.finish(newRequest(), "alice", 999);
    expect(await call(limiter)).toMatchObject({
      ok: true,
      headers: { "x-ratelimit-remaining-tokens": "1", "x-ratelimit-reset-tokens": "1h0m0s" },
    });
    limiter.finish(newRequest(), "alice", 5);
    const err = refusal(await call(limiter));
    expect(err.code).toBe("insufficient_quota");
    expect(err.message).toBe(
      "quota exhausted: 1000 Coze tokens per day for this API key; it resets at 2025-02-01T00:00:00.000Z",
    );
    expect(err.retryAfterMs).toBe(3_600_000);
    expect(await limiter.usage("alice")).toEqual({
      quota: { tokens: 1000, per: "day" },
      usedTokens: 1004,
      periodEndMs: Date.UTC(2025, 1, 1),
    });
    await clock.advance(3_599_999);
    expect((await call(limiter)).ok).toBe(false);
    await clock.advance(1);
    expect(await call(limiter)).toMatchObject({
      ok: true,
      headers: { "x-ratelimit-remaining-tokens": "1000" },
    });
    expect((await limiter.usage("alice")).usedTokens).toBe(0);
    expect(refused).toEqual(["quota", "quota"]);
  });

  it("keeps a monthly quota across days, and resets it with the month", async () => {
    const { clock, limiter } = setup({ quota: { tokens: 500, per: "month" } });
    limiter.finish(newRequest(), "alice", 500);
    expect(refusal(await call(limiter)).message).toContain("resets at 2025-02-01T00:00:00.000Z");
    await clock.advance(3_600_000);
    expect(periodOf("month", clock.now()).id).toBe("2025-02");
    expect((await call(limiter)).ok).toBe(true);
  });

  it("reads the figures of a billing request without counting it or refusing it", async () => {
    const { limiter } = setup({ requestsPerMinute: 1, quota: { tokens: 10, per: "day" } });
    expect((await call(limiter)).ok).toBe(true);
    limiter.finish(newRequest(), "alice", 20);
    for (let i = 0; i < 3; i++) {
      expect(await call(limiter, "alice", false)).toMatchObject({
        ok: true,
        headers: { "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0" },
      });
    }
  });

  it("holds a stream slot per request until it finished, and renews slots of long streams", async () => {
    const { clock, limiter, store } = setup({ maxStreams: 2 });
    const a = newRequest();
    const b = newRequest();
    expect((await call2(limiter, a)).ok).toBe(true);
    expect((await call2(limiter, b)).ok).toBe(true);
    // A balance read takes no slot and asks the store nothing.
    expect(limiter.admit(newRequest(), "alice", false)).toEqual({ ok: true, headers: {} });
    const err = refusal(await call(limiter));
    expect(err.code).toBe("too_many_streams");
    expect(err.retryAfterMs).toBe(1000);
    limiter.finish(a, "alice", 0);
    // Finishing twice gives back one slot, once.
    limiter.finish(a, "alice", 0);
    const c = newRequest();
    expect((await call2(limiter, c)).ok).toBe(true);
    expect((await call(limiter)).ok).toBe(false);
    // Past the slots' lifetime they hold on, renewed while their requests run.
    await clock.advance(slotTtlMs * 2);
    expect((await call(limiter)).ok).toBe(false);
    limiter.finish(c, "alice", 0);
    limiter.finish(b, "alice", 0);
    expect((await store.run([{ ...slotOp, mode: "acquire", holder: -1 }]))[0]?.used).toBe(1);
  });

  it("gives a slot back at once when the request ended before the store answered", async () => {
    const memory = createMemoryStore();
    let answer: () => void = () => {};
    const slow: StateStore = {
      ...memory,
      admit: (gates) =>
        new Promise((resolve) => {
          answer = () => resolve(memory.admit(gates) as Admission);
        }),
    };
    const { limiter } = setup({ maxStreams: 1 }, { store: slow });
    const gone = newRequest();
    const verdict = limiter.admit(gone, "alice", true);
    // The client went away: its response closed while the admission was under way.
    limiter.finish(gone, "alice", 0);
    answer();
    expect((await verdict)?.ok).toBe(true);
    const next = limiter.admit(newRequest(), "alice", true);
    answer();
    expect((await next)?.ok).toBe(true);
  });

  it("takes new limits from setKeys (a reload), keeping what the key used and the slots it holds", async () => {
    const { limiter } = setup({ requestsPerMinute: 2 });
    expect((await call(limiter)).ok).toBe(true);
    expect((await call(limiter)).ok).toBe(true);
    expect(refusal(await call(limiter)).code).toBe("rate_limit_exceeded");
    limiter.finish(newRequest(), "alice", 40);
    limiter.setKeys([
      { name: "alice", limits: { ...none, requestsPerMinute: 3, maxStreams: 1 } },
      { name: "carol", limits: { ...none, requestsPerMinute: 1 } },
    ]);
    // Two of the three this minute are taken: one more gets through, a stream.
    const stream = newRequest();
    const third = await call2(limiter, stream);
    expect(third).toMatchObject({ ok: true, headers: { "x-ratelimit-limit-requests": "3" } });
    expect((await call(limiter)).ok).toBe(false);
    // Without a rate: the open stream still holds the one slot.
    limiter.setKeys([{ name: "alice", limits: { ...none, maxStreams: 1 } }]);
    expect(refusal(await call(limiter)).code).toBe("too_many_streams");
    limiter.finish(stream, "alice", 0);
    expect((await call(limiter)).ok).toBe(true);
    expect((await limiter.usage("alice")).usedTokens).toBe(40);
    // A key the reload added is limited; a key without limits is not.
    limiter.setKeys([{ name: "carol", limits: { ...none, requestsPerMinute: 1 } }]);
    expect((await call(limiter, "carol")).ok).toBe(true);
    expect(refusal(await call(limiter, "carol")).code).toBe("rate_limit_exceeded");
    expect(limiter.admit(newRequest(), "alice", true)).toBeUndefined();
  });

  it("fails open when the store fails, and closed when told to", async () => {
    const failing: StateStore = {
      ...createMemoryStore(),
      kind: "redis",
      run: () => Promise.reject(new StateError("unavailable", "down")),
      admit: () => Promise.reject(new StateError("unavailable", "down")),
    };
    const open = setup({ requestsPerMinute: 1 }, { store: failing });
    expect(await call(open.limiter)).toEqual({ ok: true, headers: {} });
    expect(open.unchecked).toEqual(["open"]);
    const closedLimiter = createKeyLimiter({
      keys: [{ name: "alice", limits: { ...none, requestsPerMinute: 1 } }],
      store: failing,
      fail: "closed",
      clock: createManualClock(start),
    });
    const err = refusal(await call(closedLimiter));
    expect(err).toBeInstanceOf(GatewayError);
    expect(err.code).toBe("unavailable");
    expect(err.message).toBe("limits cannot be checked: the shared state store is unreachable");
    await expect(closedLimiter.usage("alice")).rejects.toBeInstanceOf(StateError);
  });
});

const slotOp = {
  kind: "slots",
  key: "st:alice",
  mode: "acquire",
  max: 2,
  holder: -1,
  ttlMs: slotTtlMs,
} as const;

/** A call whose request object the test keeps, to finish it later. */
async function call2(limiter: KeyLimiter, request: LimitedRequest): Promise<Verdict> {
  const verdict = limiter.admit(request, "alice", true);
  if (verdict === undefined) throw new Error("no verdict");
  return await verdict;
}
