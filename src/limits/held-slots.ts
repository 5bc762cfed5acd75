import type { Clock } from "../coze/clock.js";
import type { SlotGate, SlotOp, StateStore } from "../state/index.js";
import { slotAs } from "./key-shares.js";

/** A stream's slot lives this long unless renewed: a replica that dies frees its slots by then. */
export const slotTtlMs = 120_000;
const renewEveryMs = slotTtlMs / 3;

/**
 * A request as the limiter sees it: a field where it keeps the stream slot the request holds, and
 * a mark once the request finished (the request's context declares it).
 */
export interface LimitedRequest {
  limitHold: object | undefined;
}

/** What a finished request holds. */
const finished = Object.freeze({});

/**
 * The stream slots this replica holds: those of its calls (each call's request keeps its slot in
 * {@link LimitedRequest.limitHold} until it finished) and those its shares keep for the next
 * calls. Every slot held is renewed while any is, so that those of a
 * replica that died expire by themselves.
 */
export interface HeldSlots {
  /** A new slot of the counter `key`, held by this replica, acquired while fewer than `max` are held. */
  slot(key: string, max: number): SlotGate;
  /** Counts `slots`, acquired for no call yet (a share's), as held here: renewed until released. */
  keep(slots: readonly SlotOp[]): void;
  /** Hands `slot` to `request` until it finished; given back at once if it already has. */
  hold(request: LimitedRequest, slot: SlotOp): void;
  /**
   * Marks `request` finished: the slot it held, if it held one, still held here until
   * {@link release}d (a share may keep it for the next call).
   */
  finish(request: LimitedRequest | undefined): SlotOp | undefined;
  /** No longer held here: the operation that gives `slot` back to the store. */
  release(slot: SlotOp): SlotOp;
  /** Stops renewing. */
  close(): void;
}

/** The held slots of one replica, on `store`. */
export function createHeldSlots(store: StateStore, clock: Clock): HeldSlots {
  const live = new Set<SlotOp>();
  let renewing: AbortController | undefined;

  /** Renews the slots held here, while there are any. */
  async function renewLoop(): Promise<void> {
    const stop = new AbortController();
    renewing = stop;
    try {
      while (live.size > 0) {
        await clock.sleep(renewEveryMs, stop.signal);
        store.defer([...live].map((s) => slotAs(s, "renew")));
      }
    } catch {
      // Stopped by close().
    } finally {
      if (renewing === stop) renewing = undefined;
    }
  }

  function keep(slot: SlotOp): void {
    live.add(slot);
    if (renewing === undefined) void renewLoop();
  }

  function release(slot: SlotOp): SlotOp {
    live.delete(slot);
    return slotAs(slot, "release");
  }

  return {
    slot: (key, max) => ({
      kind: "slots",
      key,
      mode: "acquire",
      max,
      holder: store.holder(),
      ttlMs: slotTtlMs,
    }),
    keep(slots) {
      for (const slot of slots) keep(slot);
    },
    hold(request, slot) {
      // The response closed while the store answered (the client went away): nobody will give
      // the slot back, so it goes back now.
      if (request.limitHold === finished) {
        store.defer([release(slot)]);
        return;
      }
      request.limitHold = slot;
      keep(slot);
    },
    finish(request) {
      if (request === undefined) return undefined;
      const slot = request.limitHold;
      request.limitHold = finished;
      return slot === finished ? undefined : (slot as SlotOp | undefined);
    },
    release,
    close() {
      renewing?.abort();
      renewing = undefined;
    },
  };
}
