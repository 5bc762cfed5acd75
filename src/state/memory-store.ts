import { budgetGraceMs, budgetStep, type RateState, rateStep, rateTtlMs } from "./counter-math.js";
import type { OpResult, RateOp, SlotOp, StateOp, StateStore } from "./state-store.js";

/** Options of {@link createMemoryStore}. */
export interface MemoryStoreOptions {
  /** Milliseconds since the epoch: windows, periods and expiry. Default `Date.now`. */
  now?: () => number;
}

type Value = RateState | number | string | Map<string, number>;

interface Entry {
  value: Value;
  /** When the entry expires, in ms since the epoch. */
  expiresAt: number;
}

/** Writes between two sweeps of expired entries. */
const sweepEvery = 1024;

/** A slot refused waits this long before it tries again: one frees any moment. */
export const slotRetryMs = 1000;

/**
 * The state store of a single replica: everything in this process's memory, lost at restart,
 * shared by nothing. Batches run synchronously (no round trip to save), so `defer` applies at
 * once. Expired entries are swept every {@link sweepEvery} writes.
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): StateStore {
  const now = options.now ?? Date.now;
  const entries = new Map<string, Entry>();
  let writes = 0;

  function read(key: string, at: number): Value | undefined {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= at) {
      entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  function write(key: string, value: Value, expiresAt: number): void {
    entries.set(key, { value, expiresAt });
    if (++writes % sweepEvery === 0) sweep();
  }

  function sweep(): void {
    const at = now();
    for (const [key, entry] of entries) if (entry.expiresAt <= at) entries.delete(key);
  }

  /** The live slots of `op`'s key: one map per key, so operations of one batch share it. */
  function liveSlots(op: SlotOp, at: number): Map<string, number> {
    const value = read(op.key, at);
    if (!(value instanceof Map)) {
      const slots = new Map<string, number>();
      entries.set(op.key, { value: slots, expiresAt: at + op.ttlMs });
      return slots;
    }
    for (const [holder, expiry] of value) if (expiry <= at) value.delete(holder);
    return value;
  }

  function runSync(ops: readonly StateOp[]): OpResult[] {
    const at = Math.floor(now());
    const results: OpResult[] = [];
    const unwritten: OpResult[] = [];
    // Gate writes (`take`, `acquire`) wait until every gate passed; the others apply in order, so
    // a deferred `add` counts for a gate after it on the same counter.
    const gated: { op: RateOp | SlotOp; next: RateState | undefined }[] = [];
    // Slots the acquires of this batch take, per key: the next acquire counts them.
    let acquiring: Map<string, number> | undefined;
    let pass = true;
    for (const op of ops) {
      if (op.kind === "rate") {
        const step = rateStep(op, read(op.key, at) as RateState | undefined, at);
        if (op.mode === "add") writeRate(op, step.next);
        else if (op.mode === "take") gated.push({ op, next: step.next });
        if (!step.allowed) pass = false;
        results.push(step.written);
        unwritten.push(step.unwritten);
      } else if (op.kind === "budget") {
        const used = (read(op.key, at) as number | undefined) ?? 0;
        const step = budgetStep(op, used, at);
        if (op.mode === "add" && op.cost > 0) {
          write(op.key, used + op.cost, op.periodEndMs + budgetGraceMs);
        }
        if (!step.allowed) pass = false;
        results.push(step.result);
        unwritten.push(step.result);
      } else {
        const slots = liveSlots(op, at);
        if (op.mode === "acquire") {
          const pending = acquiring?.get(op.key) ?? 0;
          const held = slots.size + pending;
          const allowed = held < op.max;
          if (allowed) {
            acquiring ??= new Map();
            acquiring.set(op.key, pending + 1);
          } else pass = false;
          gated.push({ op, next: undefined });
          const figures = (n: number) => ({
            allowed,
            used: n,
            remaining: Math.max(0, op.max - n),
            resetMs: 0,
            retryAfterMs: allowed ? 0 : slotRetryMs,
          });
          results.push(figures(held + (allowed ? 1 : 0)));
          unwritten.push(figures(held));
        } else {
          if (op.mode === "release") slots.delete(op.holder);
          else if (slots.has(op.holder)) slots.set(op.holder, at + op.ttlMs);
          write(op.key, slots, at + op.ttlMs);
          const result = {
            allowed: true,
            used: slots.size,
            remaining: Math.max(0, op.max - slots.size),
            resetMs: 0,
            retryAfterMs: 0,
          };
          results.push(result);
          unwritten.push(result);
        }
      }
    }
    if (!pass) return unwritten;
    for (const { op, next } of gated) {
      if (op.kind === "rate") writeRate(op, next as RateState);
      else {
        const slots = liveSlots(op, at);
        slots.set(op.holder, at + op.ttlMs);
        write(op.key, slots, at + op.ttlMs);
      }
    }
    return results;
  }

  function writeRate(op: RateOp, next: RateState): void {
    write(op.key, next, next.at + rateTtlMs(op, next.level));
  }

  return {
    kind: "memory",
    run: runSync,
    defer(ops) {
      runSync(ops.filter(isWriteOnly));
    },
    async get(key) {
      const value = read(key, now());
      return typeof value === "string" ? value : undefined;
    },
    async set(key, value, ttlMs) {
      write(key, value, now() + ttlMs);
    },
    async setIfAbsent(key, value, ttlMs) {
      const at = now();
      if (read(key, at) !== undefined) return false;
      write(key, value, at + ttlMs);
      return true;
    },
    async delete(key) {
      entries.delete(key);
    },
    async lease(name, holder, ttlMs) {
      const at = now();
      const current = read(name, at);
      if (current !== undefined && current !== holder) return false;
      write(name, holder, at + ttlMs);
      return true;
    },
    async releaseLease(name, holder) {
      if (read(name, now()) === holder) entries.delete(name);
    },
    health: () => ({ ok: true, detail: "memory" }),
    async close() {
      entries.clear();
    },
  };
}

/** Operations `defer` takes: those that only write. */
export function isWriteOnly(op: StateOp): boolean {
  return op.mode === "add" || op.mode === "release" || op.mode === "renew";
}
