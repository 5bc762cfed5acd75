import type { KeyLimitsConfig } from "../config/index.js";
import type { Clock } from "../coze/clock.js";
import type { OpResult, RateMode, RateOp, SlotOp, StateOp, StateStore } from "../state/index.js";
import type { LimitedRequest } from "./held-slots.js";
import type { Period } from "./periods.js";
import { type LimitFigure, rateLimitHeaders } from "./rate-limit-headers.js";
import { tokenFigure, type Verdict } from "./verdict.js";

/**
 * How a replica takes shares of its keys' limits ahead: a key whose calls come to this replica
 * less than `ttlMs` apart, and which has at least half of every limit left, takes a few requests
 * (and as many stream slots) ahead, in the same round trip as one of its calls, and admits its
 * next calls here without asking the store, until the share is used up or `ttlMs` passed. What a
 * share leaves unused goes back to the store. A share never holds more than 1/32 of the key's
 * requests per minute or streams, so keys with small limits never take one and are counted call
 * by call. A stream slot a call took from a share comes back to the key's share when the call
 * finished, for the next call: a busy key's slots stay held here instead of going to the store
 * and back for every call.
 */
export interface ShareOptions {
  /** The most requests one share holds. */
  maxUnits: number;
  /** How long a share is good for, in ms. */
  ttlMs: number;
}

/** A share's size never passes 1/`shareFraction` of a key's requests per minute or streams. */
const shareFraction = 32;

/** `slot` for its release or renewal. */
export function slotAs(slot: SlotOp, mode: "release" | "renew"): SlotOp {
  const { key, max, holder, ttlMs } = slot;
  return { kind: "slots", key, mode, max, holder, ttlMs };
}

/** Where each limit's result is in a batch's results. */
export type LimitPositions = Partial<Record<"rpm" | "tpm" | "tpd" | "quota" | "streams", number>>;

/** What shares use of their limiter: its store and clock, and how it builds and holds. */
export interface ShareLimiter {
  readonly store: StateStore;
  readonly clock: Clock;
  /**
   * The operations that check `key`'s limits in one batch, and where their results are: the
   * `requests` operations on its requests per minute (the first one's result is the figure), and
   * a check for `asked(limit)` units of each token limit and of its quota.
   */
  checks(
    key: string,
    l: KeyLimitsConfig,
    period: Period,
    requests: readonly Pick<RateOp, "mode" | "cost">[],
    asked: (limit: number) => number,
  ): { ops: StateOp[]; at: LimitPositions };
  /** An operation on `key`'s requests per minute (`limit`). */
  requestsOp(key: string, limit: number, mode: RateMode, cost: number): RateOp;
  /** A new stream slot of `key`, held by this replica, acquired while fewer than `max` are held. */
  slot(key: string, max: number): SlotOp;
  /** The period `l`'s usage and quota count in at `now`. */
  usagePeriod(l: KeyLimitsConfig, now: number): Period;
  /** Hands `slot` to the call `request`: held until the call finished. */
  hold(request: LimitedRequest, slot: SlotOp): void;
  /** Counts `slots`, taken ahead by a share, as held here (renewed until released). */
  keep(slots: readonly SlotOp[]): void;
  /** No longer held here: the operation that gives `slot` back to the store. */
  release(slot: SlotOp): SlotOp;
}

/** A replica's shares, by key. */
export interface Shares {
  /** Admits a call from the key's share: `undefined` when there is none to admit it. */
  admit(request: LimitedRequest, key: string, l: KeyLimitsConfig, now: number): Verdict | undefined;
  /** Asks for a share behind a call's batch, when the key's calls come often and it has none. */
  ask(key: string, l: KeyLimitsConfig, now: number): void;
  /** Counts tokens a finished call of `key` used against its share. */
  spent(key: string, tokens: number): void;
  /**
   * Keeps the stream slot of a finished call of `key` in the key's share, for its next call:
   * false when there is none to keep it (or it has slots enough), and the slot goes back.
   */
  giveBack(key: string, slot: SlotOp): boolean;
  /** Gives every share back and forgets what they learned of each key. */
  clear(): void;
}

/**
 * The shares of one replica (see {@link ShareOptions}): a busy key far from its limits takes a
 * few requests and stream slots ahead, in the same round trip as one of its calls, and its next
 * calls here are admitted from them without asking the store.
 */
export function createShares(options: ShareOptions, limiter: ShareLimiter): Shares {
  const { maxUnits, ttlMs } = options;
  const { store, clock, checks, usagePeriod, hold, keep, release } = limiter;
  interface Share {
    readonly key: string;
    readonly limits: KeyLimitsConfig;
    /** Requests left to admit here. */
    units: number;
    /** Stream slots held here for the next calls: taken ahead, or given back by finished calls. */
    readonly slots: SlotOp[];
    /** Slots this share (or the one it followed) handed out whose calls have not finished. */
    readonly lent: Set<SlotOp>;
    /** Tokens this replica may see used before the share no longer holds. */
    readonly margin: number;
    /** The key's tokens used here (`spent`) when the share was asked for. */
    readonly spentBefore: number;
    readonly until: number;
    /** Requests the last round trip added: the next is twice as many when these run low. */
    readonly size: number;
    readonly requests: LimitFigure | undefined;
    readonly tokens: LimitFigure | undefined;
    readonly timer: AbortController;
    /** Given back, or merged into the share that followed it. */
    done: boolean;
  }
  const held = new Map<string, Share>();
  /** Tokens each key's calls used here, since the start: a share counts what it did not see. */
  const spent = new Map<string, number>();
  /** The size of each key's next share. */
  const sizes = new Map<string, number>();
  /** When each key last asked the store here. */
  const lastCall = new Map<string, number>();
  /** Keys whose share was refused: not asked again before then. */
  const notBefore = new Map<string, number>();
  const asking = new Set<string>();
  const half = (n: number) => Math.ceil(n / 2);
  const sized = (n: number) => Math.min(maxUnits, Math.max(2, n));

  /** Gives back what `share` holds unused (once); a share mostly unused halves the next. */
  function retire(share: Share): void {
    if (share.done) return;
    share.done = true;
    if (held.get(share.key) === share) held.delete(share.key);
    share.timer.abort();
    const back: StateOp[] = share.slots.map(release);
    const rpm = share.limits.requestsPerMinute;
    if (rpm && share.units > 0) {
      back.push(limiter.requestsOp(share.key, rpm, "add", -share.units));
    }
    if (back.length > 0) store.defer(back);
    if (share.units > share.size / 2) sizes.set(share.key, sized(share.size / 2));
  }

  /**
   * Asks the store for `units` requests of `key` ahead (and as many stream slots), while at
   * least half of each of its limits is left; a share still held here is topped up.
   */
  function takeAhead(key: string, l: KeyLimitsConfig, units: number): void {
    // Calls that finish from now on may be missing from the store's figures: they are counted
    // against the share here. (Those that finish before the batch goes out count twice: the
    // share errs on the side of less.)
    const spentBefore = spent.get(key) ?? 0;
    // At least half the requests must stay after the share; its figure is the take's.
    const { ops, at } = checks(
      key,
      l,
      usagePeriod(l, clock.now()),
      [
        { mode: "check", cost: half(l.requestsPerMinute ?? 0) + units },
        { mode: "take", cost: units },
      ],
      half,
    );
    const slots: SlotOp[] = [];
    if (l.maxStreams) {
      // Taken against half the limit: they pass while half the streams stay free after. A
      // share still held here has slots (kept, or lent to calls that give them back): only
      // the missing ones are taken, and at least one, so that a top-up too passes only while
      // half the streams are free.
      const earlier = held.get(key);
      const have =
        earlier === undefined || earlier.done || earlier.limits !== l
          ? 0
          : earlier.slots.length + earlier.lent.size;
      for (let i = Math.min(have, units - 1); i < units; i++) {
        slots.push(limiter.slot(key, Math.floor(l.maxStreams / 2)));
      }
      ops.push(...slots);
    }
    const taken = (results: readonly OpResult[]) => {
      asking.delete(key);
      const now = clock.now();
      if (!results.every((r) => r.allowed)) {
        notBefore.set(key, now + ttlMs);
        return;
      }
      keep(slots);
      const r = (name: keyof typeof at) => (at[name] === undefined ? undefined : results[at[name]]);
      const take = at.rpm === undefined ? undefined : results[at.rpm + 1];
      // Tokens this replica may see used while every token limit keeps half.
      let margin = Number.POSITIVE_INFINITY;
      for (const [limit, res] of [
        [l.tokensPerMinute, r("tpm")],
        [l.tokensPerDay, r("tpd")],
        [l.quota?.tokens, r("quota")],
      ] as const) {
        if (limit !== undefined && res !== undefined) {
          margin = Math.min(margin, res.remaining - half(limit));
        }
      }
      // A share still held here (the limits unchanged) goes on in this one.
      const earlier = held.get(key);
      let left = 0;
      let lent = new Set<SlotOp>();
      if (earlier !== undefined && earlier.limits === l && !earlier.done) {
        earlier.done = true;
        earlier.timer.abort();
        left = earlier.units;
        lent = earlier.lent;
        // Under the new ones: the slots handed out first are those taken last, so that the
        // ones a share keeps stay the same while the key is busy.
        slots.unshift(...earlier.slots);
      } else if (earlier !== undefined) retire(earlier);
      const timer = new AbortController();
      const share: Share = {
        key,
        limits: l,
        units: units + left,
        slots,
        lent,
        margin,
        spentBefore,
        until: now + ttlMs,
        size: units,
        requests:
          take && l.requestsPerMinute
            ? { limit: l.requestsPerMinute, remaining: take.remaining, resetMs: take.resetMs }
            : undefined,
        tokens: tokenFigure(l, r("tpm"), r("tpd"), r("quota")),
        timer,
        done: false,
      };
      held.set(key, share);
      clock.sleep(ttlMs, timer.signal).then(
        () => retire(share),
        () => {},
      );
    };
    asking.add(key);
    try {
      const results = store.run(ops);
      if (results instanceof Promise) results.then(taken, () => asking.delete(key));
      else taken(results);
    } catch {
      asking.delete(key);
    }
  }

  /** The size of the key's next share, within its limits; below 2, none. */
  function nextSize(key: string, l: KeyLimitsConfig): number {
    let units = sizes.get(key) ?? Math.min(4, maxUnits);
    if (l.requestsPerMinute) {
      units = Math.min(units, Math.floor(l.requestsPerMinute / shareFraction));
    }
    if (l.maxStreams) units = Math.min(units, Math.floor(l.maxStreams / shareFraction));
    return units;
  }

  return {
    /**
     * Admits a call from the key's share: `undefined` when there is none to admit it. The
     * share is topped up ahead, twice as large, once a quarter of it is left.
     */
    admit(
      request: LimitedRequest,
      key: string,
      l: KeyLimitsConfig,
      now: number,
    ): Verdict | undefined {
      const share = held.get(key);
      if (share === undefined) return undefined;
      if (
        share.limits !== l ||
        now >= share.until ||
        share.units === 0 ||
        share.margin < (spent.get(key) ?? 0) - share.spentBefore ||
        (l.maxStreams && share.slots.length === 0)
      ) {
        retire(share);
        return undefined;
      }
      share.units--;
      const slot = share.slots.pop();
      if (slot !== undefined) {
        share.lent.add(slot);
        hold(request, slot);
      }
      if (share.units <= share.size / 4 && !asking.has(key) && !((notBefore.get(key) ?? 0) > now)) {
        sizes.set(key, sized(share.size * 2));
        const units = nextSize(key, l);
        if (units >= 2) takeAhead(key, l, units);
      }
      const r = share.requests;
      const t = share.tokens;
      const requests = r && {
        limit: r.limit,
        remaining: r.remaining + share.units,
        resetMs: r.resetMs,
      };
      const tokens = t && {
        limit: t.limit,
        remaining: Math.max(0, t.remaining - (spent.get(key) ?? 0) + share.spentBefore),
        resetMs: t.resetMs,
      };
      return { ok: true, headers: rateLimitHeaders(requests, tokens) };
    },
    /**
     * Asks for a share behind a call's batch, in the same round trip, when the key's calls
     * come here less than a share's time apart and it has none.
     */
    ask(key: string, l: KeyLimitsConfig, now: number): void {
      const last = lastCall.get(key);
      lastCall.set(key, now);
      if (last === undefined || now - last >= ttlMs || asking.has(key)) return;
      if ((notBefore.get(key) ?? 0) > now) return;
      const units = nextSize(key, l);
      if (units >= 2) takeAhead(key, l, units);
    },
    /** Counts tokens a finished call of `key` used against its share's margin. */
    spent(key: string, tokens: number): void {
      spent.set(key, (spent.get(key) ?? 0) + tokens);
    },
    giveBack(key: string, slot: SlotOp): boolean {
      const share = held.get(key);
      if (share === undefined || share.done || !share.limits.maxStreams) return false;
      share.lent.delete(slot);
      // Never more than a share's worth kept: what other replicas may need stays in the store.
      if (share.slots.length >= share.size) return false;
      share.slots.push(slot);
      return true;
    },
    /** Gives every share back. */
    clear(): void {
      for (const share of [...held.values()]) retire(share);
      for (const map of [sizes, lastCall, notBefore, spent]) map.clear();
    },
  };
}
