import type { ApiKeyConfig, KeyLimitsConfig } from "../config/index.js";
import type { Clock } from "../coze/clock.js";
import { GatewayError, type LimitKind } from "../service/index.js";
import type {
  Admission,
  BudgetGate,
  KeyGates,
  RateCheck,
  RateGate,
  RateMode,
  RateOp,
  SlotGate,
  StateOp,
  StateStore,
} from "../state/index.js";
import { createHeldSlots, type LimitedRequest } from "./held-slots.js";
import { createShares, type LimitPositions, type ShareOptions } from "./key-shares.js";
import { type Period, periodOf, type QuotaPeriod } from "./periods.js";
import { judge, type Verdict } from "./verdict.js";

export type { Verdict } from "./verdict.js";

const minuteMs = 60_000;
const dayMs = 86_400_000;

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
  /** Local shares of busy keys' limits, for a store that costs a round trip (Redis). Off when undefined. */
  share?: ShareOptions;
}

/**
 * Per-key limits and usage on the shared state store (issue 15). A call is admitted with one
 * batch (one round trip); what it used is counted after it ended, deferred to ride along with a
 * later batch. A request keeps the stream slot it holds in its own field ({@link LimitedRequest}:
 * the request's context declares it).
 */
export interface KeyLimiter {
  /**
   * Checks a call of `key` against its limits and counts it: `undefined` when the key has none
   * (nothing to wait for); else the verdict, synchronously with the memory store. `metered`
   * false only reads the figures (billing reads): nothing is counted, nothing refused.
   */
  admit(
    request: LimitedRequest,
    key: string,
    metered: boolean,
  ): Verdict | Promise<Verdict> | undefined;
  /** Counts the Coze tokens a finished call of `key` used, and frees its stream slot. Never throws. */
  finish(request: LimitedRequest | undefined, key: string | undefined, tokens: number): void;
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

/** The store keys of one API key's counters; `usage` is that of the period `usagePeriod`. */
interface CounterNames {
  readonly requests: string;
  readonly tpm: string;
  readonly tpd: string;
  readonly streams: string;
  usagePeriod: string;
  usage: string;
}

interface Plan {
  readonly name: string;
  readonly limits: KeyLimitsConfig | undefined;
  /** Whether a call has anything to check. */
  readonly admits: boolean;
  /** The key's gates in `period`, for calls (`take`) and for reads (`check`): made once per period. */
  gates: { period: Period; take: KeyGates; check: KeyGates } | undefined;
}

/** Creates the limiter of the configured keys. */
export function createKeyLimiter(options: KeyLimiterOptions): KeyLimiter {
  const { store, clock, events } = options;
  const plansOf = (keys: KeyLimiterOptions["keys"]) =>
    new Map<string, Plan>(
      keys.map((k) => [
        k.name,
        { name: k.name, limits: k.limits, admits: !!k.limits, gates: undefined },
      ]),
    );
  let plans = plansOf(options.keys);
  const held = createHeldSlots(store, clock);

  // Each key's counter names, made once (every call and every finish names three to five).
  let named = new Map<string, CounterNames>();
  const keyOf = (name: string): CounterNames => {
    let names = named.get(name);
    if (names === undefined) {
      names = {
        requests: `rq:${name}`,
        tpm: `tm:${name}`,
        tpd: `td:${name}`,
        streams: `st:${name}`,
        usagePeriod: "",
        usage: "",
      };
      named.set(name, names);
    }
    return names;
  };
  const usageKey = (name: string, p: Period): string => {
    const names = keyOf(name);
    if (names.usagePeriod !== p.id) {
      names.usagePeriod = p.id;
      names.usage = `u:${p.id}:${name}`;
    }
    return names.usage;
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

  const requestsOp = (key: string, limit: number, mode: RateMode, cost: number): RateOp => ({
    kind: "rate",
    key: keyOf(key).requests,
    mode,
    limit,
    windowMs: minuteMs,
    cost,
  });
  /** An operation on `key`'s tokens per minute (`tpm`, `limit`) or per day (`tpd`). */
  const tokensOp = (
    key: string,
    counter: "tpm" | "tpd",
    limit: number,
    mode: RateMode,
    cost: number,
  ): RateOp => ({
    kind: "rate",
    key: keyOf(key)[counter],
    mode,
    limit,
    windowMs: counter === "tpm" ? minuteMs : dayMs,
    cost,
  });
  const slot = (key: string, max: number): SlotGate => held.slot(keyOf(key).streams, max);

  /** See {@link ShareLimiter.checks}. */
  function checks(
    key: string,
    l: KeyLimitsConfig,
    period: Period,
    requests: readonly Pick<RateOp, "mode" | "cost">[],
    asked: (limit: number) => number,
  ): { ops: StateOp[]; at: LimitPositions } {
    const ops: StateOp[] = [];
    const at: LimitPositions = {};
    if (l.requestsPerMinute) {
      at.rpm = ops.length;
      for (const { mode, cost } of requests) {
        ops.push(requestsOp(key, l.requestsPerMinute, mode, cost));
      }
    }
    if (l.tokensPerMinute) {
      at.tpm = ops.length;
      ops.push(tokensOp(key, "tpm", l.tokensPerMinute, "check", asked(l.tokensPerMinute)));
    }
    if (l.tokensPerDay) {
      at.tpd = ops.length;
      ops.push(tokensOp(key, "tpd", l.tokensPerDay, "check", asked(l.tokensPerDay)));
    }
    if (l.quota) {
      at.quota = ops.length;
      ops.push({
        kind: "budget",
        key: usageKey(key, period),
        mode: "check",
        limit: l.quota.tokens,
        cost: asked(l.quota.tokens),
        periodEndMs: period.endMs,
      });
    }
    return { ops, at };
  }

  /** The gates of `plan`'s calls (`metered`) or reads in `period`, made once per period. */
  function gatesOf(plan: Plan, l: KeyLimitsConfig, period: Period, metered: boolean): KeyGates {
    let made = plan.gates;
    if (made === undefined || made.period !== period) {
      const gates = (requests: typeof takeOne | typeof checkOne): KeyGates => {
        const { ops, at } = checks(plan.name, l, period, requests, one);
        const op = (i: number | undefined) => (i === undefined ? undefined : ops[i]);
        return {
          requests: op(at.rpm) as RateGate | undefined,
          tokensPerMinute: op(at.tpm) as RateCheck | undefined,
          tokensPerDay: op(at.tpd) as RateCheck | undefined,
          quota: op(at.quota) as BudgetGate | undefined,
          streams: undefined,
        };
      };
      made = { period, take: gates(takeOne), check: gates(checkOne) };
      plan.gates = made;
    }
    return metered ? made.take : made.check;
  }

  const shares =
    options.share &&
    createShares(options.share, {
      store,
      clock,
      checks,
      requestsOp,
      slot,
      usagePeriod,
      hold: held.hold,
      keep: held.keep,
      release: held.release,
    });

  function admit(
    request: LimitedRequest,
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
    let gates = gatesOf(plan, l, period, metered);
    let stream: SlotGate | undefined;
    if (l.maxStreams && metered) {
      stream = slot(key, l.maxStreams);
      gates = {
        requests: gates.requests,
        tokensPerMinute: gates.tokensPerMinute,
        tokensPerDay: gates.tokensPerDay,
        quota: gates.quota,
        streams: stream,
      };
    } else if (
      // A balance read of a key whose only limit is its streams: nothing to ask the store.
      gates.requests === undefined &&
      gates.tokensPerMinute === undefined &&
      gates.tokensPerDay === undefined &&
      gates.quota === undefined
    ) {
      return { ok: true, headers: {} };
    }
    try {
      const admitted = store.admit(gates);
      // Behind the call's batch, in the same round trip: a share of the key's limits, if any.
      if (metered) shares?.ask(key, l, now);
      return admitted instanceof Promise
        ? admitted.then((a) => decide(request, l, period, a, metered, stream), failed)
        : decide(request, l, period, admitted, metered, stream);
    } catch (err) {
      return failed(err);
    }
  }

  /** The verdict of an admission; an admitted call holds its stream slot. */
  function decide(
    request: LimitedRequest,
    l: KeyLimitsConfig,
    period: Period,
    a: Admission,
    metered: boolean,
    stream: SlotGate | undefined,
  ): Verdict {
    const verdict = judge(l, period, a, metered);
    if (verdict.ok && stream !== undefined) held.hold(request, stream);
    if (!verdict.ok && verdict.error.limit) events?.refused?.(verdict.error.limit.kind);
    return verdict;
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

  return {
    admit,
    finish(request, key, tokens) {
      const ops: StateOp[] = [];
      const slot = held.finish(request);
      // The key's share on this replica, if it has room, keeps the slot for the key's next
      // call; else the slot goes back to the store.
      if (slot !== undefined && !(key !== undefined && shares?.giveBack(key, slot))) {
        ops.push(held.release(slot));
      }
      const plan = key === undefined ? undefined : plans.get(key);
      if (plan !== undefined && tokens > 0) {
        const cost = Math.round(tokens);
        const l = plan.limits;
        const period = usagePeriod(l, clock.now());
        ops.push({
          kind: "budget",
          key: usageKey(plan.name, period),
          mode: "add",
          limit: 0,
          cost,
          periodEndMs: period.endMs,
        });
        if (l?.tokensPerMinute) {
          ops.push(tokensOp(plan.name, "tpm", l.tokensPerMinute, "add", cost));
        }
        if (l?.tokensPerDay) ops.push(tokensOp(plan.name, "tpd", l.tokensPerDay, "add", cost));
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
          key: usageKey(key, period),
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
      named = new Map();
      shares?.clear();
    },
    close() {
      shares?.clear();
      held.close();
    },
  };
}

/** A call's operation on its requests per minute: counted, or (a billing read) only read. */
const takeOne = [{ mode: "take", cost: 1 }] as const;
const checkOne = [{ mode: "check", cost: 1 }] as const;
/** A call asks its token limits for one unit left. */
const one = () => 1;
