import type { StateOp } from "./state-store.js";

/** Write-only operations waiting for the next round trip, merged per counter. */
export interface DeferredOps {
  /** Queues `ops`: `add`s to one counter add up, a `release` cancels a pending `renew`. */
  push(ops: readonly StateOp[]): void;
  /** Everything queued, in arrival order of each counter; the queue is empty after. */
  take(): StateOp[];
  /** Operations queued now. */
  readonly size: number;
  /** Operations dropped because the queue was full, since the start. */
  readonly dropped: number;
}

/**
 * Creates the queue of deferred operations. At most `max` distinct counters wait (bounded by
 * the configured keys in practice); past that, new ones are dropped and counted: losing a
 * charge beats growing without bound while the store is unreachable.
 */
export function createDeferredOps(max = 10_000): DeferredOps {
  let queue = new Map<string, StateOp>();
  let dropped = 0;
  return {
    push(ops) {
      for (const op of ops) {
        const holder = op.kind === "slots" ? op.holder : "";
        const id = `${op.kind}\u0000${op.key}\u0000${holder}`;
        const id2 = `${id}\u0000${op.mode}`;
        const earlier = queue.get(id2);
        if (earlier !== undefined && earlier.kind !== "slots" && op.kind !== "slots") {
          queue.set(id2, { ...earlier, cost: earlier.cost + op.cost });
          continue;
        }
        if (op.kind === "slots" && op.mode === "release") queue.delete(`${id}\u0000renew`);
        if (op.kind === "slots" && op.mode === "renew" && queue.has(`${id}\u0000release`)) {
          continue;
        }
        if (earlier === undefined && queue.size >= max) {
          dropped++;
          continue;
        }
        queue.set(id2, op);
      }
    },
    take() {
      const ops = [...queue.values()];
      queue = new Map();
      return ops;
    },
    get size() {
      return queue.size;
    },
    get dropped() {
      return dropped;
    },
  };
}
