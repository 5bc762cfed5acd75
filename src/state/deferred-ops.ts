import type { BudgetOp, RateOp, SlotOp, StateOp } from "./state-store.js";

/** Write-only operations waiting for the next round trip, merged per counter. */
export interface DeferredOps {
  /** Queues `ops`: `add`s to one counter add up, a `release` cancels a pending `renew`. */
  push(ops: readonly StateOp[]): void;
  /** Everything queued, counters first, then slots; the queue is empty after. */
  take(): StateOp[];
  /** Operations queued now. */
  readonly size: number;
  /** Operations dropped because the queue was full, since the start. */
  readonly dropped: number;
}

/**
 * Creates the queue of deferred operations. At most `max` distinct counters and slots wait
 * (bounded by the configured keys and open streams in practice); past that, new ones are dropped
 * and counted: losing a charge beats growing without bound while the store is unreachable.
 */
export function createDeferredOps(max = 10_000): DeferredOps {
  /** `add`s by counter (only `add` is deferred for rates and budgets), with their summed cost. */
  let adds = new Map<string, { op: RateOp | BudgetOp; cost: number }>();
  /** The last `release` or `renew` of each slot. */
  let slots = new Map<string, SlotOp>();
  let dropped = 0;
  const full = () => adds.size + slots.size >= max;
  return {
    push(ops) {
      for (const op of ops) {
        if (op.kind === "slots") {
          const id = `${op.key}\u0000${op.holder}`;
          const earlier = slots.get(id);
          // A renew after a release (or after a renew) changes nothing.
          if (earlier !== undefined && op.mode === "renew") continue;
          if (earlier === undefined && full()) {
            dropped++;
            continue;
          }
          slots.set(id, op);
          continue;
        }
        const id = op.kind === "rate" ? `r${op.key}` : `b${op.key}`;
        const earlier = adds.get(id);
        if (earlier !== undefined) earlier.cost += op.cost;
        else if (full()) dropped++;
        else adds.set(id, { op, cost: op.cost });
      }
    },
    take() {
      const ops: StateOp[] = [];
      for (const { op, cost } of adds.values()) ops.push(cost === op.cost ? op : { ...op, cost });
      for (const op of slots.values()) ops.push(op);
      adds = new Map();
      slots = new Map();
      return ops;
    },
    get size() {
      return adds.size + slots.size;
    },
    get dropped() {
      return dropped;
    },
  };
}
