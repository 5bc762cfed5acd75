import type { BudgetOp, OpResult, RateGate, RateOp } from "./state-store.js";

// The arithmetic of rates and budgets, for the memory store. The Redis store runs the very same
// steps in Lua (batch-script.ts): change one, change the other; the store tests run one suite
// against both.

/** Slack for comparisons of fractional units. */
const eps = 1e-6;

/** A rate's stored state: units in use (`level`) as of `at` (ms since the epoch). */
export interface RateState {
  level: number;
  at: number;
}

/**
 * Rounds a stored level as Redis keeps it (`%.6f`), so both stores see the same numbers. A whole
 * number (a level drained to 0 plus whole units, the common case) is already what `%.6f` keeps.
 */
export function roundLevel(level: number): number {
  return Number.isInteger(level) ? level : Number(level.toFixed(6));
}

/**
 * What one rate operation found at `at`: whether it passes alone, how long until it would, and
 * the level before it (drained by the time passed, never below 0) and after it (what `take` and
 * `add` write; the level before for `check`).
 */
export interface RateStep {
  readonly allowed: boolean;
  readonly retryAfterMs: number;
  readonly before: number;
  readonly after: number;
  /** When the levels hold: `now`, or the stored time when that is later (never backwards). */
  readonly at: number;
}

/** The level of `state` at `now`: drained by the time passed, never below 0. */
export function drained(op: RateOp, state: RateState | undefined, now: number): number {
  if (state === undefined) return 0;
  const elapsed = now - state.at;
  return elapsed <= 0 ? state.level : Math.max(0, state.level - (elapsed * op.limit) / op.windowMs);
}

/** When the levels of `state` hold at `now`: `now`, or the stored time when that is later. */
export function asOf(state: RateState | undefined, now: number): number {
  return state === undefined || state.at < now ? now : state.at;
}

/** The level an `add` or a `take` of `cost` leaves from `before`. */
export function added(before: number, cost: number): number {
  return Math.max(0, roundLevel(before + cost));
}

/** One rate gate (`take` or `check`) on `state` at `now`; an `add` is {@link added}. */
export function rateStep(op: RateGate, state: RateState | undefined, now: number): RateStep {
  const before = drained(op, state, now);
  const at = asOf(state, now);
  const per = op.windowMs / op.limit;
  if (op.mode === "check") {
    const retryAfterMs = checkRetryMs(op, before);
    return { allowed: retryAfterMs === 0, retryAfterMs, before, after: before, at };
  }
  const after = added(before, op.cost);
  const allowed = after <= op.limit + eps;
  const retryAfterMs = allowed ? 0 : Math.max(1, Math.ceil((after - op.limit) * per - eps));
  return { allowed, retryAfterMs, before, after, at };
}

/**
 * The result of a rate gate's `step`: with the level it wrote (`written`: a `take` of a batch
 * that passed), else with the level before it.
 */
export function rateResult(op: RateOp, step: RateStep, written: boolean): OpResult {
  return levelResult(op, written ? step.after : step.before, step.retryAfterMs);
}

/**
 * The result of a `check` of `op` on `state` at `now`: the same as {@link rateResult} of its
 * {@link rateStep}, without making the step (every call of a key with token limits checks them).
 */
export function rateCheck(op: RateOp, state: RateState | undefined, now: number): OpResult {
  const level = drained(op, state, now);
  return levelResult(op, level, checkRetryMs(op, level));
}

/** How long until a `check` of `op` passes at `level` units in use: 0 when it passes now. */
function checkRetryMs(op: RateOp, level: number): number {
  const wanted = Math.max(1, op.cost);
  if (op.limit - level >= wanted - eps) return 0;
  return Math.max(1, Math.ceil((level + wanted - op.limit) * (op.windowMs / op.limit) - eps));
}

/** The figures of `op`'s rate at `level` units in use; refused while `retryAfterMs` is not 0. */
export function levelResult(op: RateOp, level: number, retryAfterMs: number): OpResult {
  const per = op.windowMs / op.limit;
  return {
    allowed: retryAfterMs === 0,
    used: Math.max(0, Math.ceil(level - eps)),
    remaining: Math.max(0, Math.floor(op.limit - level + eps)),
    resetMs: Math.max(0, Math.ceil(level * per - eps)),
    retryAfterMs,
  };
}

/** How long a rate's state is worth keeping: until it drained, plus a second. */
export function rateTtlMs(op: RateOp, level: number): number {
  return Math.ceil((level * op.windowMs) / op.limit) + 1000;
}

/** Whether a budget operation passes alone on counter value `used`. */
export function budgetAllowed(op: BudgetOp, used: number): boolean {
  return op.mode === "add" || op.limit === 0 || used + Math.max(1, op.cost) <= op.limit;
}

/** The result of a budget operation on counter value `used` (before it) at `now`. */
export function budgetResult(op: BudgetOp, used: number, now: number): OpResult {
  const after = op.mode === "add" ? used + op.cost : used;
  const allowed = budgetAllowed(op, used);
  const resetMs = Math.max(0, op.periodEndMs - now);
  return {
    allowed,
    used: after,
    remaining: op.limit === 0 ? 0 : Math.max(0, op.limit - after),
    resetMs,
    retryAfterMs: allowed ? 0 : Math.max(1, resetMs),
  };
}

/** How long a budget counter is kept past its period: an hour, for late reads. */
export const budgetGraceMs = 3_600_000;
