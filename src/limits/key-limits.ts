import { randomBytes } from "node:crypto";
import type { ApiKeyConfig, KeyLimitsConfig } from "../config/index.js";
import type { Clock } from "../coze/clock.js";
import { GatewayError, type LimitKind } from "../service/index.js";
import type { OpResult, RateMode, RateOp, SlotOp, StateOp, StateStore } from "../state/index.js";
import { type Period, periodOf, type QuotaPeriod } from "./periods.js";
import { durationText, type LimitFigure, rateLimitHeaders } from "./rate-limit-headers.js";

const minuteMs = 60_000;
const dayMs = 86_400_000;
/** A stream's slot lives this long unless renewed: a replica that dies frees its slots by then. */
export const slotTtlMs = 120_000;
const renewEveryMs = slotTtlMs / 3;

/** What a call may do, by the key's limits: go on with these headers, or stop with this error. */
export type Verdict =
  | { readonly ok: true; readonly headers: Readonly<Record<string, string>> }
  | { readonly ok: false; readonly error: GatewayError };

/** A key's usage in its quota period (or this UTC month without a quota), for billing. */
export interface KeyUsage {
  /** The quota, when the key has one. */
  quota: { tokens: number; per: QuotaPeriod } | undefined;
  /** Coze tokens used in the period. */
  usedTokens: number;
  /** When the period ends, in ms since the epoch. */
  periodEndMs: number;
}

/** Where the limiter reports what it refused, and what it could not check. */
export interface LimiterEvents {
  refused?(kind: LimitKind): void;
  /** A call whose limits could not be checked (the store failed): let through or refused. */
  unchecked?(mode: "open" | "closed"): void;
}

/** How a replica takes shares of its keys' limits ahead: see {@link KeyLimiterOptions.share}. */
export interface ShareOptions {
  /** The most requests one share holds. */
  maxUnits: number;
  /** How long a share is good for, in ms. */
  ttlMs: number;
}

/** A share's size never passes 1/`shareFraction` of a key's requests per minute or streams. */
const shareFraction = 32;

/** Options of {@link createKeyLimiter}. */
export interface KeyLimiterOptions {
  /** The configured keys; those with `limits` are limited, every key's usage is counted. */
  keys: readonly Pick<ApiKeyConfig, "name" | "limits">[];
  store: StateStore;
  /** While the store fails: let calls through (`open`) or refuse them with 503 (`closed`). */
  fail: "open" | "closed";
  /** Time for quota periods and the slots' renewal. Default the system's. */
  clock: Clock;
  events?: LimiterEvents;
  /**
   * Local shares, for a store that costs a round trip (Redis): a key whose calls come to this
   * replica less than `ttlMs` apart, and which has at least half of every limit left, takes a
   * few requests (and as many stream slots) ahead, in the same round trip as one of its calls,
   * and admits its next calls here without asking the store, until the share is used up or
   * `ttlMs` passed. What a share leaves unused goes back to the store. A share never holds more
   * than 1/32 of the key's requests per minute or streams, so keys with small limits never take
   * one and are counted call by call. Off when undefined.
   */
  share?: ShareOptions;
}

/**
 * Per-key limits and usage on the shared state store (issue 15). A call is admitted with one
 * batch (one round trip); what it used is counted after it ended, deferred to ride along with a
 * later batch. Requests are tagged (a property under a symbol of this module on an object the
 * caller passes, the request's context) with the stream slot they hold.
 */
export interface KeyLimiter {
  /**
   * Checks a call of `key` against its limits and counts it: `undefined` when the key has none
   * (nothing to wait for); else the verdict, synchronously with the memory store. `metered`
   * false only reads the figures (billing reads): nothing is counted, nothing refused.
   */
  admit(request: object, key: string, metered: boolean): Verdict | Promise<Verdict> | undefined;
  /** Counts the Coze tokens a finished call of `key` used, and frees its stream slot. Never throws. */
  finish(request: object | undefined, key: string | undefined, tokens: number): void;
  /**
   * The usage and quota of `key` now.
   * @throws StateError when the store fails.
   */
  usage(key: string): Promise<KeyUsage>;
  /**
   * Replaces the keys and their limits (a config reload): the next call of each key is checked
   * against its new limits. What the keys used and the stream slots they hold live in the store
   * by key name, so a key that stays keeps its counts.
   */
  setKeys(keys: readonly Pick<ApiKeyConfig, "name" | "limits">[]): void;
  /** Stops renewing stream slots. */
  close(): void;
}

const heldSlot = Symbol("coze-gateway.heldSlot");
const finished = Symbol("coze-gateway.finished");
type Tagged = { [heldSlot]?: SlotOp | undefined; [finished]?: true };

interface Plan {
  readonly name: string;
  readonly limits: KeyLimitsConfig | undefined;
  /** Whether a call has anything to check. */
  readonly admits: boolean;
}

/** Creates the limiter of the configured keys. */
export function createKeyLimiter(options: KeyLimiterOptions): KeyLimiter {
  const { store, clock, events } = options;
  const plansOf = (keys: KeyLimiterOptions["keys"]) =>
    new Map<string, Plan>(
      keys.map((k) => [k.name, { name: k.name, limits: k.limits, admits: !!k.limits }]),
    );
  let plans = plansOf(options.keys);
  // Slot holders are this process's own: random, so no caller-supplied id can collide.
  const replica = randomBytes(6).toString("base64url");
  let seq = 0;
  const live = new Set<SlotOp>();
  let renewing: AbortController | undefined;

  const keyOf = {
    requests: (name: string) => `rq:${name}`,
    tpm: (name: string) => `tm:${name}`,
    tpd: (name: string) => `td:${name}`,
    usage: (name: string, p: Period) => `u:${p.id}:${name}`,
    streams: (name: string) => `st:${name}`,
  };
  // The current day and month, kept until they end: every call and every finish asks.
  const current: Partial<Record<QuotaPeriod, Period & { startMs: number }>> = {};
  const usagePeriod = (limits: KeyLimitsConfig | undefined, now: number): Period => {
    const per = limits?.quota?.per ?? "month";
    const known = current[per];
    if (known !== undefined && now >= known.startMs && now < known.endMs) return known;
    const period = { ...periodOf(per, now), startMs: now };
    current[per] = period;
    return period;
  };

  /** Where each limit's result is in a batch's results. */
  type At = Partial<Record<"rpm" | "tpm" | "tpd" | "quota" | "streams", number>>;

  /**
   * The operations that check `key`'s limits in one batch, and where their results are: the
   * `requests` operations on its requests per minute (the first one's result is the figure), and
   * a check for `asked(limit)` units of each token limit and of its quota.
   */
  function checks(
    key: string,
    l: KeyLimitsConfig,
    period: Period,
    requests: readonly Pick<RateOp, "mode" | "cost">[],
    asked: (limit: number) => number,
  ): { ops: StateOp[]; at: At } {
    const ops: StateOp[] = [];
    const at: At = {};
    const rate = (k: string, limit: number, windowMs: number, mode: RateMode, cost: number) =>
      ops.push({ kind: "rate", key: k, mode, limit, windowMs, cost });
    if (l.requestsPerMinute) {
      at.rpm = ops.length;
      for (const { mode, cost } of requests) {
        rate(keyOf.requests(key), l.requestsPerMinute, minuteMs, mode, cost);
      }
    }
    if (l.tokensPerMinute) {
      at.tpm = ops.length;
      rate(keyOf.tpm(key), l.tokensPerMinute, minuteMs, "check", asked(l.tokensPerMinute));
    }
    if (l.tokensPerDay) {
      at.tpd = ops.length;
      rate(keyOf.tpd(key), l.tokensPerDay, dayMs, "check", asked(l.tokensPerDay));
    }
    if (l.quota) {
      at.quota = ops.length;
      ops.push({
        kind: "budget",
        key: keyOf.usage(key, period),
        mode: "check",
        limit: l.quota.tokens,
        cost: asked(l.quota.tokens),
        periodEndMs: period.endMs,
      });
    }
    return { ops, at };
  }

  const shares = createShares();

  function admit(
    request: object,
    key: string,
    metered: boolean,
  ): Verdict | Promise<Verdict> | undefined {
    const plan = plans.get(key);
    if (plan === undefined || !plan.admits || plan.limits === undefined) return undefined;
    const l = plan.limits;
    const now = clock.now();
    if (metered && shares !== undefined) {
      const local = shares.admit(request, key, l, now);
      if (local !== undefined) return local;
    }
    const period = usagePeriod(l, now);
    const { ops, at } = checks(key, l, period, metered ? takeOne : checkOne, () => 1);
    let slot: SlotOp | undefined;
    if (l.maxStreams && metered) {
      at.streams = ops.length;
      slot = {
        kind: "slots",
        key: keyOf.streams(key),
        mode: "acquire",
        max: l.maxStreams,
        holder: `${replica}:${seq++}`,
        ttlMs: slotTtlMs,
      };
      ops.push(slot);
    }
    // A balance read of a key whose only limit is its streams: nothing to ask the store.
    if (ops.length === 0) return { ok: true, headers: {} };
    const decide = (results: readonly OpResult[]): Verdict => {
      const r = (name: keyof typeof at) => (at[name] === undefined ? undefined : results[at[name]]);
      const verdict = judge(l, period, r, metered);
      if (verdict.ok && slot !== undefined) hold(request, slot);
      if (!verdict.ok && verdict.error.limit) events?.refused?.(verdict.error.limit.kind);
      return verdict;
    };
    try {
      const results = store.run(ops);
      // Behind the call's batch, in the same round trip: a share of the key's limits, if any.
      if (metered) shares?.ask(key, l, now);
      return results instanceof Promise ? results.then(decide, failed) : decide(results);
    } catch (err) {
      return failed(err);
    }
  }

  /** The local shares of a replica, when {@link KeyLimiterOptions.share} asks for them. */
  function createShares() {
    if (options.share === undefined) return undefined;
    const { maxUnits, ttlMs } = options.share;
    interface Share {
      readonly key: string;
      readonly limits: KeyLimitsConfig;
      /** Requests left to admit here. */
      units: number;
      /** Stream slots taken ahead and not handed out. */
      readonly slots: SlotOp[];
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
      const back: StateOp[] = share.slots.map((slot) => ({ ...slot, mode: "release" as const }));
      const rpm = share.limits.requestsPerMinute;
      if (rpm && share.units > 0) {
        back.push({
          kind: "rate",
          key: keyOf.requests(share.key),
          mode: "add",
          limit: rpm,
          windowMs: minuteMs,
          cost: -share.units,
        });
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
        // Acquired against half the limit: they pass while half the streams stay free after.
        for (let i = 0; i < units; i++) {
          slots.push({
            kind: "slots",
            key: keyOf.streams(key),
            mode: "acquire",
            max: Math.floor(l.maxStreams / 2),
            holder: `${replica}:${seq++}`,
            ttlMs: slotTtlMs,
          });
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
        const r = (name: keyof typeof at) =>
          at[name] === undefined ? undefined : results[at[name]];
        const take = at.rpm === undefined ? undefined : results[at.rpm + 1];
        let margin = Number.POSITIVE_INFINITY;
        let tokens: LimitFigure | undefined;
        for (const [limit, res] of [
          [l.tokensPerMinute, r("tpm")],
          [l.tokensPerDay, r("tpd")],
          [l.quota?.tokens, r("quota")],
        ] as const) {
          if (limit === undefined || res === undefined) continue;
          margin = Math.min(margin, res.remaining - half(limit));
          if (tokens === undefined || res.remaining < tokens.remaining) {
            tokens = { limit, remaining: res.remaining, resetMs: res.resetMs };
          }
        }
        // A share still held here (the limits unchanged) goes on in this one.
        const earlier = held.get(key);
        let left = 0;
        const pool = slots;
        if (earlier !== undefined && earlier.limits === l && !earlier.done) {
          earlier.done = true;
          earlier.timer.abort();
          left = earlier.units;
          pool.push(...earlier.slots);
        } else if (earlier !== undefined) retire(earlier);
        const timer = new AbortController();
        const share: Share = {
          key,
          limits: l,
          units: units + left,
          slots: pool,
          margin,
          spentBefore,
          until: now + ttlMs,
          size: units,
          requests:
            take && l.requestsPerMinute
              ? { limit: l.requestsPerMinute, remaining: take.remaining, resetMs: take.resetMs }
              : undefined,
          tokens,
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
      admit(request: object, key: string, l: KeyLimitsConfig, now: number): Verdict | undefined {
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
        if (slot !== undefined) hold(request, slot);
        if (
          share.units <= share.size / 4 &&
          !asking.has(key) &&
          !((notBefore.get(key) ?? 0) > now)
        ) {
          sizes.set(key, sized(share.size * 2));
          const units = nextSize(key, l);
          if (units >= 2) takeAhead(key, l, units);
        }
        const requests = share.requests && {
          ...share.requests,
          remaining: share.requests.remaining + share.units,
        };
        const tokens = share.tokens && {
          ...share.tokens,
          remaining: Math.max(
            0,
            share.tokens.remaining - (spent.get(key) ?? 0) + share.spentBefore,
          ),
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
      /** Gives every share back. */
      clear(): void {
        for (const share of [...held.values()]) retire(share);
        for (const map of [sizes, lastCall, notBefore, spent]) map.clear();
      },
    };
  }

  function failed(_err: unknown): Verdict {
    events?.unchecked?.(options.fail);
    if (options.fail === "open") return { ok: true, headers: {} };
    return {
      ok: false,
      error: new GatewayError(
        "unavailable",
        "limits cannot be checked: the shared state store is unreachable",
        { retryAfterMs: 1000 },
      ),
    };
  }

  function hold(request: object, slot: SlotOp): void {
    const tagged = request as Tagged;
    // The response closed while the store answered (the client went away): nobody will give
    // the slot back, so it goes back now.
    if (tagged[finished]) {
      store.defer([{ ...slot, mode: "release" }]);
      return;
    }
    tagged[heldSlot] = slot;
    live.add(slot);
    if (renewing === undefined) void renewLoop();
  }

  /** Renews the slots of the streams open here, while there are any. */
  async function renewLoop(): Promise<void> {
    const stop = new AbortController();
    renewing = stop;
    try {
      while (live.size > 0) {
        await clock.sleep(renewEveryMs, stop.signal);
        store.defer([...live].map((s) => ({ ...s, mode: "renew" as const })));
      }
    } catch {
      // Stopped by close().
    } finally {
      if (renewing === stop) renewing = undefined;
    }
  }

  return {
    admit,
    finish(request, key, tokens) {
      const ops: StateOp[] = [];
      const tagged = request as Tagged | undefined;
      if (tagged !== undefined) tagged[finished] = true;
      const slot = tagged?.[heldSlot];
      if (tagged !== undefined && slot !== undefined) {
        tagged[heldSlot] = undefined;
        live.delete(slot);
        ops.push({ ...slot, mode: "release" });
      }
      const plan = key === undefined ? undefined : plans.get(key);
      if (plan !== undefined && tokens > 0) {
        const cost = Math.round(tokens);
        const l = plan.limits;
        const period = usagePeriod(l, clock.now());
        ops.push({
          kind: "budget",
          key: keyOf.usage(plan.name, period),
          mode: "add",
          limit: 0,
          cost,
          periodEndMs: period.endMs,
        });
        const add = (k: string, limit: number, windowMs: number) =>
          ops.push({ kind: "rate", key: k, mode: "add", limit, windowMs, cost });
        if (l?.tokensPerMinute) add(keyOf.tpm(plan.name), l.tokensPerMinute, minuteMs);
        if (l?.tokensPerDay) add(keyOf.tpd(plan.name), l.tokensPerDay, dayMs);
        shares?.spent(plan.name, cost);
      }
      if (ops.length > 0) store.defer(ops);
    },
    async usage(key) {
      const limits = plans.get(key)?.limits;
      const period = usagePeriod(limits, clock.now());
      const [result] = await store.run([
        {
          kind: "budget",
          key: keyOf.usage(key, period),
          mode: "check",
          limit: 0,
          cost: 0,
          periodEndMs: period.endMs,
        },
      ]);
      return { quota: limits?.quota, usedTokens: result?.used ?? 0, periodEndMs: period.endMs };
    },
    setKeys(keys) {
      plans = plansOf(keys);
      shares?.clear();
    },
    close() {
      shares?.clear();
      renewing?.abort();
      renewing = undefined;
    },
  };
}

/** A call's operation on its requests per minute: counted, or (a billing read) only read. */
const takeOne = [{ mode: "take", cost: 1 }] as const;
const checkOne = [{ mode: "check", cost: 1 }] as const;

/** The gates a call can be refused by. */
const gates = ["quota", "tpd", "tpm", "rpm", "streams"] as const;

/**
 * The verdict of a batch's results: the first refusal by weight (quota, tokens per day and per
 * minute, requests, streams), waiting for the longest of all that refused; else the figures. A
 * call that is not metered is never refused.
 */
function judge(
  l: KeyLimitsConfig,
  period: Period,
  r: (name: "rpm" | "tpm" | "tpd" | "quota" | "streams") => OpResult | undefined,
  metered: boolean,
): Verdict {
  const figure = (limit: number | undefined, res: OpResult | undefined): LimitFigure | undefined =>
    limit === undefined || res === undefined
      ? undefined
      : { limit, remaining: res.remaining, resetMs: res.resetMs };
  const tokenFigures = [
    figure(l.tokensPerMinute, r("tpm")),
    figure(l.tokensPerDay, r("tpd")),
    figure(l.quota?.tokens, r("quota")),
  ].filter((f) => f !== undefined);
  // The tokens figures are those of the token limit closest to refusing.
  const tokens = tokenFigures.reduce<LimitFigure | undefined>(
    (least, f) => (least === undefined || f.remaining < least.remaining ? f : least),
    undefined,
  );
  const headers = rateLimitHeaders(figure(l.requestsPerMinute, r("rpm")), tokens);
  // Most calls pass: the words below are written only for a refusal.
  if (!metered || gates.every((g) => r(g)?.allowed !== false)) return { ok: true, headers };
  const refusals: [LimitKind, OpResult | undefined, () => string][] = [
    [
      "quota",
      r("quota"),
      () =>
        `quota exhausted: ${l.quota?.tokens} Coze tokens per ${l.quota?.per} for this API key; it resets at ${new Date(period.endMs).toISOString()}`,
    ],
    ["tokens", r("tpd"), () => `rate limit reached: ${l.tokensPerDay} Coze tokens per day`],
    ["tokens", r("tpm"), () => `rate limit reached: ${l.tokensPerMinute} Coze tokens per minute`],
    ["requests", r("rpm"), () => `rate limit reached: ${l.requestsPerMinute} requests per minute`],
    ["streams", r("streams"), () => `too many streams open for this API key (${l.maxStreams})`],
  ];
  const refused = refusals.filter(([, res]) => res !== undefined && !res.allowed);
  const first = refused[0];
  if (first === undefined) return { ok: true, headers };
  const [kind, , words] = first;
  const text = words();
  const retryAfterMs = Math.max(...refused.map(([, res]) => res?.retryAfterMs ?? 0));
  const message =
    kind === "quota" || kind === "streams"
      ? text
      : `${text} for this API key; try again in ${durationText(retryAfterMs)}`;
  const code =
    kind === "quota"
      ? "insufficient_quota"
      : kind === "streams"
        ? "too_many_streams"
        : "rate_limit_exceeded";
  return {
    ok: false,
    error: new GatewayError(code, message, {
      retryAfterMs,
      limit: { kind, headers },
    }),
  };
}
