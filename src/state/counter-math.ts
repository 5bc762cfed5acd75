import type { BudgetOp, OpResult, RateOp } from "./state-store.js";

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

/** `state` at `now`: the level drained by the time passed (never below 0, never backwards). */
export function drained(state: RateState | undefined, op: RateOp, now: number): RateState {
  if (state === undefined) return { level: 0, at: now };
  const elapsed = now - state.at;
  if (elapsed <= 0) return state;
  return { level: Math.max(0, state.level - (elapsed * op.limit) / op.windowMs), at: now };
}

/** The figures of a rate at `level`, before any retry. */
function figures(op: RateOp, level: number): { used: number; remaining: number; resetMs: number } {
  const per = op.windowMs / op.limit;
  return {
    used: Math.max(0, Math.ceil(level - eps)),
    remaining: Math.max(0, Math.floor(op.limit - level + eps)),
    resetMs: Math.max(0, Math.ceil(level * per - eps)),
  };
}

/** What a rate operation decides: its result whether the batch passes or not, and what it writes. */
export interface RateStep {
  /** Whether this operation alone passes (true for `add`). */
  allowed: boolean;
  /** The state to store when it writes: `add` always, `take` when the batch passes. */
  next: RateState;
  /** The result when the operation writes. */
  written: OpResult;
  /** The result when it does not (a `check`, or a `take` in a refused batch). */
  unwritten: OpResult;
}

/** One rate operation on `state` at `now`. */
export function rateStep(op: RateOp, state: RateState | undefined, now: number): RateStep {
  const current = drained(state, op, now);
  const per = op.windowMs / op.limit;
  const before = figures(op, current.level);
  if (op.mode === "check") {
    const wanted = Math.max(1, op.cost);
    const allowed = op.limit - current.level >= wanted - eps;
    const retryAfterMs = allowed
      ? 0
      : Math.max(1, Math.ceil((current.level + wanted - op.limit) * per - eps));
    const result = { allowed, ...before, retryAfterMs };
    return { allowed, next: current, written: result, unwritten: result };
  }
  const level = Math.max(0, roundLevel(current.level + op.cost));
  const next = { level, at: current.at };
  if (op.mode === "add") {
    const result = { allowed: true, ...figures(op, level), retryAfterMs: 0 };
    return { allowed: true, next, written: result, unwritten: result };
  }
  const allowed = level <= op.limit + eps;
  const retryAfterMs = allowed ? 0 : Math.max(1, Math.ceil((level - op.limit) * per - eps));
  return {
    allowed,
    next,
    written: { allowed, ...figures(op, level), retryAfterMs },
    unwritten: { allowed, ...before, retryAfterMs },
  };
}

/** How long a rate's state is worth keeping: until it drained, plus a second. */
export function rateTtlMs(op: RateOp, level: number): number {
  return Math.ceil((level * op.windowMs) / op.limit) + 1000;
}

/** One budget operation on counter value `used` at `now`. */
export function budgetStep(
  op: BudgetOp,
  used: number,
  now: number,
): { allowed: boolean; result: OpResult } {
  const after = op.mode === "add" ? used + op.cost : used;
  const allowed = op.mode === "add" || op.limit === 0 || used + Math.max(1, op.cost) <= op.limit;
  const resetMs = Math.max(0, op.periodEndMs - now);
  return {
    allowed,
    result: {
      allowed,
      used: after,
      remaining: op.limit === 0 ? 0 : Math.max(0, op.limit - after),
      resetMs,
      retryAfterMs: allowed ? 0 : Math.max(1, resetMs),
    },
  };
}

/** How long a budget counter is kept past its period: an hour, for late reads. */
export const budgetGraceMs = 3_600_000;
