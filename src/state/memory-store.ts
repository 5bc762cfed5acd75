import {
  added,
  asOf,
  budgetAllowed,
  budgetGraceMs,
  budgetResult,
  drained,
  levelResult,
  type RateState,
  type RateStep,
  rateCheck,
  rateResult,
  rateStep,
  rateTtlMs,
} from "./counter-math.js";
import type {
  Admission,
  KeyGates,
  OpResult,
  RateGate,
  RateOp,
  SlotOp,
  StateOp,
  StateStore,
} from "./state-store.js";

/** Options of {@link createMemoryStore}. */
export interface MemoryStoreOptions {
  /** Milliseconds since the epoch: windows, periods and expiry. Default `Date.now`. */
  now?: () => number;
}

type Value = RateState | number | string | Slots;

/**
 * The slots of one key: when each holder's slot expires. `earliest` is never later than the
 * first of those expiries, so the holders are looked through only once one may have expired,
 * not on every operation (a key with a thousand streams open would pay for all of them on each).
 */
class Slots {
  readonly holders = new Map<number, number>();
  earliest = Number.POSITIVE_INFINITY;

  hold(holder: number, expiresAt: number): void {
    this.holders.set(holder, expiresAt);
    if (expiresAt < this.earliest) this.earliest = expiresAt;
  }

  /** Drops the holders expired at `at`, if any may have. */
  expire(at: number): void {
    if (this.earliest > at) return;
    let earliest = Number.POSITIVE_INFINITY;
    for (const [holder, expiresAt] of this.holders) {
      if (expiresAt <= at) this.holders.delete(holder);
      else if (expiresAt < earliest) earliest = expiresAt;
    }
    this.earliest = earliest;
  }
}

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
  let holders = 0;

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
    // An entry is changed in place: the long-lived map then holds no new objects to trace.
    const entry = entries.get(key);
    if (entry === undefined) entries.set(key, { value, expiresAt });
    else {
      entry.value = value;
      entry.expiresAt = expiresAt;
    }
    if (++writes % sweepEvery === 0) sweep();
  }

  function sweep(): void {
    const at = now();
    for (const [key, entry] of entries) if (entry.expiresAt <= at) entries.delete(key);
  }

  /** The live slots of `op`'s key: one per key, so operations of one batch share it. */
  function liveSlots(op: SlotOp, at: number): Slots {
    const value = read(op.key, at);
    if (!(value instanceof Slots)) {
      const slots = new Slots();
      entries.set(op.key, { value: slots, expiresAt: at + op.ttlMs });
      return slots;
    }
    value.expire(at);
    return value;
  }

  /**
   * Runs `ops` as one batch and returns what each found. Gate writes (`take`, `acquire`) wait
   * until every gate passed; the others apply in order, so a deferred `add` counts for a gate
   * after it on the same counter.
   */
  function runSync(ops: readonly StateOp[]): OpResult[] {
    const at = Math.floor(now());
    // What each operation found: a rate's step (the level it wrote, for an `add`), a budget's
    // counter before it, the slots held before an acquire or after a release or renewal. Results
    // are made of them at the end.
    const found: (RateStep | number)[] = [];
    // Where the gates that write are in `ops`.
    const gated: number[] = [];
    // Slots the acquires of this batch take, per key: the next acquire counts them.
    const acquired: string[] = [];
    let pass = true;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i] as StateOp;
      if (isWriteOnly(op)) found.push(apply(op, at));
      else if (op.kind === "rate") {
        const step = stepOf(op as RateGate, at);
        if (op.mode === "take") gated.push(i);
        if (!step.allowed) pass = false;
        found.push(step);
      } else if (op.kind === "budget") {
        const used = (read(op.key, at) as number | undefined) ?? 0;
        if (!budgetAllowed(op, used)) pass = false;
        found.push(used);
      } else {
        let held = liveSlots(op, at).holders.size;
        for (const key of acquired) if (key === op.key) held++;
        if (held < op.max) acquired.push(op.key);
        else pass = false;
        gated.push(i);
        found.push(held);
      }
    }
    if (pass) {
      for (const i of gated) {
        const op = ops[i] as RateOp | SlotOp;
        if (op.kind === "rate") writeStep(op, found[i] as RateStep);
        else acquire(op, liveSlots(op, at), at);
      }
    }
    const results: OpResult[] = [];
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i] as StateOp;
      const f = found[i] as RateStep | number;
      if (op.kind === "rate") {
        results.push(
          op.mode === "add" ? levelResult(op, f as number, 0) : rateResult(op, f as RateStep, pass),
        );
      } else if (op.kind === "budget") results.push(budgetResult(op, f as number, at));
      else if (op.mode !== "acquire") results.push(slotResult(op, f as number, true));
      else {
        const held = f as number;
        results.push(slotResult(op, pass ? held + 1 : held, held < op.max));
      }
    }
    return results;
  }

  /**
   * Applies a write-only operation (`add`, `release`, `renew`) at `at`: what it found, as
   * {@link runSync} keeps it (the level a rate's `add` wrote, a budget's counter before it, the
   * slots held after). Every finished call defers one to four of them.
   */
  function apply(op: StateOp, at: number): number {
    if (op.kind === "rate") {
      const state = read(op.key, at) as RateState | undefined;
      const level = added(drained(op, state, at), op.cost);
      writeRate(op, level, asOf(state, at));
      return level;
    }
    if (op.kind === "budget") {
      const used = (read(op.key, at) as number | undefined) ?? 0;
      if (op.cost > 0) write(op.key, used + op.cost, op.periodEndMs + budgetGraceMs);
      return used;
    }
    const slots = liveSlots(op, at);
    if (op.mode === "release") slots.holders.delete(op.holder);
    else if (slots.holders.has(op.holder)) slots.hold(op.holder, at + op.ttlMs);
    write(op.key, slots, at + op.ttlMs);
    return slots.holders.size;
  }

  /** Takes a slot of `slots` (those of `op`'s key) for `op`'s holder. */
  function acquire(op: SlotOp, slots: Slots, at: number): void {
    slots.hold(op.holder, at + op.ttlMs);
    write(op.key, slots, at + op.ttlMs);
  }

  /** What a `check` of `op` finds at `at`. */
  function checkOf(op: RateOp, at: number): OpResult {
    return rateCheck(op, read(op.key, at) as RateState | undefined, at);
  }

  /** What rate gate `op` finds at `at`. */
  function stepOf(op: RateGate, at: number): RateStep {
    return rateStep(op, read(op.key, at) as RateState | undefined, at);
  }

  /**
   * {@link StateStore.admit}: the batch of the gates present, run without making it (no list of
   * operations, of what each found, or of results): every call of a limited key comes here.
   */
  function admit(gates: KeyGates): Admission {
    const at = Math.floor(now());
    const { requests, tokensPerMinute, tokensPerDay, quota, streams } = gates;
    const rq = requests && stepOf(requests, at);
    const tpm = tokensPerMinute && checkOf(tokensPerMinute, at);
    const tpd = tokensPerDay && checkOf(tokensPerDay, at);
    const used = quota && ((read(quota.key, at) as number | undefined) ?? 0);
    const slots = streams && liveSlots(streams, at);
    const held = slots === undefined ? 0 : slots.holders.size;
    const free = streams === undefined || held < streams.max;
    const allowed =
      rq?.allowed !== false &&
      tpm?.allowed !== false &&
      tpd?.allowed !== false &&
      (quota === undefined || budgetAllowed(quota, used as number)) &&
      free;
    if (allowed) {
      if (requests?.mode === "take") writeStep(requests, rq as RateStep);
      if (streams !== undefined) acquire(streams, slots as Slots, at);
    }
    return {
      allowed,
      requests: requests && rateResult(requests, rq as RateStep, allowed),
      tokensPerMinute: tpm,
      tokensPerDay: tpd,
      quota: quota && budgetResult(quota, used as number, at),
      streams: streams && slotResult(streams, allowed ? held + 1 : held, free),
    };
  }

  /** Writes the level a `take` of `op` leaves (its `step`). */
  function writeStep(op: RateOp, step: RateStep): void {
    writeRate(op, step.after, step.at);
  }

  /** Writes `op`'s rate: `level` units in use as of `at`. */
  function writeRate(op: RateOp, level: number, at: number): void {
    const expiresAt = at + rateTtlMs(op, level);
    const state = entries.get(op.key)?.value;
    if (typeof state !== "object" || state instanceof Slots)
      write(op.key, { level, at }, expiresAt);
    else {
      state.level = level;
      state.at = at;
      write(op.key, state, expiresAt);
    }
  }

  return {
    kind: "memory",
    run: runSync,
    admit,
    holder: () => holders++,
    defer(ops) {
      const at = Math.floor(now());
      for (const op of ops) if (isWriteOnly(op)) apply(op, at);
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

/** The figures of `used` slots of `op`'s key. */
function slotResult(op: SlotOp, used: number, allowed: boolean): OpResult {
  return {
    allowed,
    used,
    remaining: Math.max(0, op.max - used),
    resetMs: 0,
    retryAfterMs: allowed ? 0 : slotRetryMs,
  };
}

/** Operations `defer` takes: those that only write. */
export function isWriteOnly(op: StateOp): boolean {
  return op.mode === "add" || op.mode === "release" || op.mode === "renew";
}
