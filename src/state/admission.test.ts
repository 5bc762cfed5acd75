import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { storeSteps } from "../../test/support/state-ops.js";
import { admissionOf, gateOps } from "./admission.js";
import { createMemoryStore, isWriteOnly } from "./memory-store.js";
import type { Admission, KeyGates, OpResult, StateStore } from "./state-store.js";

const start = Date.UTC(2025, 0, 15, 12);

/** An admission as the batch of its gates gives it. */
function byBatch(store: StateStore, gates: KeyGates): Admission {
  return admissionOf(gates, store.run(gateOps(gates)) as readonly OpResult[]);
}

describe("the memory store's admission", () => {
  it("finds and counts what the batch of its gates would, for any sequence of calls and batches", () => {
    fc.assert(
      fc.property(storeSteps(start + 86_400_000), (steps) => {
        let time = start;
        const now = () => time;
        const direct = createMemoryStore({ now });
        const batched = createMemoryStore({ now });
        for (const { advanceMs, ops, gates } of steps) {
          time += advanceMs;
          if (gates !== undefined) expect(direct.admit(gates)).toEqual(byBatch(batched, gates));
          else expect(direct.run(ops)).toEqual(batched.run(ops));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("applies deferred writes as a batch of them would, for any sequence of calls and batches", () => {
    fc.assert(
      fc.property(storeSteps(start + 86_400_000), (steps) => {
        let time = start;
        const now = () => time;
        const deferring = createMemoryStore({ now });
        const batched = createMemoryStore({ now });
        for (const { advanceMs, ops, gates } of steps) {
          time += advanceMs;
          if (gates !== undefined) {
            expect(deferring.admit(gates)).toEqual(batched.admit(gates));
            continue;
          }
          const writes = ops.filter(isWriteOnly);
          deferring.defer(writes);
          batched.run(writes);
          const gated = ops.filter((op) => !isWriteOnly(op));
          expect(deferring.run(gated)).toEqual(batched.run(gated));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("counts the request and takes the slot only when every gate passes", () => {
    const store = createMemoryStore({ now: () => start });
    const gates = (holder: number): KeyGates => ({
      requests: { kind: "rate", key: "rq", mode: "take", limit: 5, windowMs: 60_000, cost: 1 },
      tokensPerMinute: undefined,
      tokensPerDay: undefined,
      quota: undefined,
      streams: { kind: "slots", key: "st", mode: "acquire", max: 1, holder, ttlMs: 60_000 },
    });
    const first = store.admit(gates(1)) as Admission;
    expect(first).toMatchObject({
      allowed: true,
      requests: { allowed: true, used: 1, remaining: 4 },
      streams: { allowed: true, used: 1, remaining: 0 },
      quota: undefined,
    });
    // The slot is taken: refused, and the request is not counted.
    const second = store.admit(gates(2)) as Admission;
    expect(second).toMatchObject({
      allowed: false,
      requests: { allowed: true, used: 1, remaining: 4 },
      streams: { allowed: false, used: 1, retryAfterMs: 1000 },
    });
  });
});
