import fc from "fast-check";
import type { KeyGates, RateOp, StateOp } from "../../src/state/index.js";

// Random operations and admissions for the state stores' property tests: a few counters, each
// with its limit and window (as a key's limits keep theirs), small enough to reach.

const rates = [
  { key: "r1", limit: 7, windowMs: 60_000 },
  { key: "r2", limit: 10, windowMs: 60_000 },
  { key: "r3", limit: 1000, windowMs: 86_400_000 },
] as const;

/** Any operation of a batch, on the counters above; budgets end at `periodEndMs`. */
export function stateOp(periodEndMs: number): fc.Arbitrary<StateOp> {
  return fc.oneof(
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
      periodEndMs: fc.constant(periodEndMs),
    }),
    fc.record({
      kind: fc.constant("slots" as const),
      key: fc.constant("s1"),
      mode: fc.constantFrom("acquire" as const, "release" as const, "renew" as const),
      max: fc.constant(2),
      holder: fc.constantFrom(1, 2, 3),
      ttlMs: fc.constant(20_000),
    }),
  );
}

/**
 * A call's admission on the same counters: requests taken (or only checked), tokens per minute
 * and per day and a quota asked for one unit, a stream slot; each gate present or not.
 */
export function keyGates(periodEndMs: number): fc.Arbitrary<KeyGates> {
  const [r1, r2, r3] = rates;
  return fc.record({
    requests: fc.option(
      fc.constantFrom("take" as const, "check" as const).map((mode) => ({
        kind: "rate" as const,
        ...r1,
        mode,
        cost: 1,
      })),
      { nil: undefined },
    ),
    tokensPerMinute: fc.option(
      fc.constant({ kind: "rate" as const, ...r2, mode: "check" as const, cost: 1 }),
      {
        nil: undefined,
      },
    ),
    tokensPerDay: fc.option(
      fc.constant({ kind: "rate" as const, ...r3, mode: "check" as const, cost: 1 }),
      {
        nil: undefined,
      },
    ),
    quota: fc.option(
      fc.constant({
        kind: "budget" as const,
        key: "b1",
        mode: "check" as const,
        limit: 500,
        cost: 1,
        periodEndMs,
      }),
      { nil: undefined },
    ),
    streams: fc.option(
      fc.constantFrom(1, 2, 3).map((holder) => ({
        kind: "slots" as const,
        key: "s1",
        mode: "acquire" as const,
        max: 2,
        holder,
        ttlMs: 20_000,
      })),
      { nil: undefined },
    ),
  });
}

/** A step of a property test: time passes, then a batch runs or a call is admitted. */
export type StoreStep =
  | { advanceMs: number; ops: StateOp[]; gates?: undefined }
  | { advanceMs: number; gates: KeyGates; ops?: undefined };

/** Steps of {@link StoreStep}s, a third of them admissions. */
export function storeSteps(periodEndMs: number): fc.Arbitrary<StoreStep[]> {
  const advanceMs = fc.integer({ min: 0, max: 9_000 });
  const step = fc.oneof(
    {
      weight: 2,
      arbitrary: fc.record({
        advanceMs,
        ops: fc.array(stateOp(periodEndMs), { minLength: 1, maxLength: 4 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ advanceMs, gates: keyGates(periodEndMs) }) },
  );
  return fc.array(step, { minLength: 1, maxLength: 12 });
}
