/**
 * What the gateway remembers between requests, behind one interface (issue 15 "Shared state"):
 * limit counters and quotas now, and later what the doors keep (interrupts awaiting an answer,
 * Responses ids) and the lease that lets one replica poll a run. Two stores implement it: in
 * memory (one replica, the default) and Redis (several replicas share one server).
 *
 * Counters are updated by {@link StateOp}s, run in batches: a batch is atomic and costs one round
 * trip to Redis, whatever it holds.
 */

/**
 * How an operation uses a rate: `take` counts `cost` units when they fit under the limit (a
 * request against requests per minute); `check` only asks whether `cost` units (at least one)
 * are left (tokens, which are known only after the call); `add` counts `cost` units whether or
 * not they fit (the tokens a finished call used; a negative cost gives units back, never below 0).
 */
export type RateMode = "take" | "check" | "add";

/**
 * A sliding-window rate: at most `limit` units per `windowMs`, given back continuously (a leaky
 * bucket: a key with 10 requests per minute gets one back every 6 s, and may use all 10 at once).
 * Unlike a fixed window, no boundary lets twice the limit through.
 */
export interface RateOp {
  readonly kind: "rate";
  readonly key: string;
  readonly mode: RateMode;
  /** Units per window, at least 1. */
  readonly limit: number;
  readonly windowMs: number;
  /** Units counted by `take` and `add`; those `check` asks for (at least 1). */
  readonly cost: number;
}

/**
 * A budget of one fixed period (a UTC day or month): a counter that `add` raises, that `check`
 * compares with `limit` (passing while `cost` units, at least one, are left), and that is gone
 * after `periodEndMs` (the key names the period, so the next one starts at 0). `limit` 0 means
 * none: the counter only records usage.
 */
export interface BudgetOp {
  readonly kind: "budget";
  readonly key: string;
  readonly mode: "check" | "add";
  readonly limit: number;
  readonly cost: number;
  /** When the period ends (and the counter resets), in ms since the epoch. */
  readonly periodEndMs: number;
}

/**
 * Slots held at once (streams open for a key): `acquire` takes one for `holder` when fewer than
 * `max` are held (counting those the acquires before it in the batch take), `release` gives it
 * back, `renew` extends it. A slot expires `ttlMs` after it
 * was taken or renewed, so a replica that dies frees its slots by itself.
 */
export interface SlotOp {
  readonly kind: "slots";
  readonly key: string;
  readonly mode: "acquire" | "release" | "renew";
  readonly max: number;
  /**
   * Who holds the slot: a number from the store's {@link StateStore.holder}, which no other slot
   * of the store has (the Redis store tells replicas apart by a random name of its own).
   */
  readonly holder: number;
  readonly ttlMs: number;
}

/** One operation of a batch. */
export type StateOp = RateOp | BudgetOp | SlotOp;

/** What one operation found, in whole units and whole milliseconds. */
export interface OpResult {
  /** For gates (`take`, `check`, `acquire`): whether this operation alone would pass. */
  readonly allowed: boolean;
  /** Units in use after the batch (a rate's level rounded up, a budget's counter, slots held). */
  readonly used: number;
  /** Units left under the limit after the batch (0 when over). */
  readonly remaining: number;
  /** Time until the counter is back to its initial state (a rate drained, a period over). */
  readonly resetMs: number;
  /** For a refused gate: time until it would pass; else 0. */
  readonly retryAfterMs: number;
}

/**
 * Every gate of one API key, checked at once when a call arrives: its requests per minute
 * (`take` one, or `check` for a call that only reads), its tokens per minute and per day and its
 * quota (`check`), and a stream slot (`acquire`). A gate the key has no limit of is undefined.
 */
export interface KeyGates {
  readonly requests: RateGate | undefined;
  readonly tokensPerMinute: RateCheck | undefined;
  readonly tokensPerDay: RateCheck | undefined;
  readonly quota: BudgetGate | undefined;
  readonly streams: SlotGate | undefined;
}

/** A rate operation that is a gate: `take` or `check`. */
export type RateGate = RateOp & { readonly mode: "take" | "check" };
/** A rate operation that only asks: `check`. */
export type RateCheck = RateOp & { readonly mode: "check" };
/** A budget operation that is a gate: `check`. */
export type BudgetGate = BudgetOp & { readonly mode: "check" };
/** A slot operation that is a gate: `acquire`. */
export type SlotGate = SlotOp & { readonly mode: "acquire" };

/**
 * What an admission found, gate by gate (undefined for a gate not checked): the same results as
 * a batch of the gates present, in the order of {@link KeyGates}. `allowed` when every gate
 * passed, and then the `take` and the `acquire` were counted.
 */
export interface Admission {
  readonly allowed: boolean;
  readonly requests: OpResult | undefined;
  readonly tokensPerMinute: OpResult | undefined;
  readonly tokensPerDay: OpResult | undefined;
  readonly quota: OpResult | undefined;
  readonly streams: OpResult | undefined;
}

/** Whether the store answers, for `/readyz`, metrics and logs. */
export interface StateHealth {
  readonly ok: boolean;
  /** `memory`, `redis`, or why it is not ok (`redis unreachable since …`). */
  readonly detail: string;
}

/** Why a store call failed: the store cannot be reached, or did not answer in time. */
export type StateErrorCode = "unavailable" | "timeout";

/** A failed store call. The message names no key, URL or password. */
export class StateError extends Error {
  override readonly name = "StateError";
  readonly code: StateErrorCode;
  constructor(code: StateErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
  }
}

/** The store of everything the gateway remembers between requests. */
export interface StateStore {
  /** `memory` or `redis`. */
  readonly kind: "memory" | "redis";
  /**
   * Runs `ops` as one atomic batch (in one round trip, with the deferred operations in front of
   * them). Gates (`take`, `check`, `acquire`) pass all together or write nothing: a request
   * refused for its tokens does not use up one of its requests per minute. `add`, `release` and
   * `renew` always apply. The memory store answers synchronously.
   * @throws StateError when the store is unreachable or slower than its timeout.
   */
  run(ops: readonly StateOp[]): readonly OpResult[] | Promise<readonly OpResult[]>;
  /**
   * Admits a call of one API key: the same as {@link run} of the gates present, in the order of
   * {@link KeyGates}, with the results by gate. The memory store answers synchronously, without
   * making the batch (every call of a limited key comes through here).
   * @throws StateError when the store is unreachable or slower than its timeout.
   */
  admit(gates: KeyGates): Admission | Promise<Admission>;
  /** A new slot holder ({@link SlotOp.holder}): a number this store never handed out before. */
  holder(): number;
  /**
   * Queues write-only operations (`add`, `release`, `renew`; gates are refused) to ride along
   * with the next {@link run}, or to be sent on their own after the store's flush delay when no
   * run comes first. Operations on the same counter are merged. Never throws; the memory store
   * applies them at once.
   */
  defer(ops: readonly StateOp[]): void;
  /** The value under `key`, or `undefined`. */
  get(key: string): Promise<string | undefined>;
  /** Stores `value` under `key` for `ttlMs`. */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Stores `value` under `key` for `ttlMs` unless the key exists; true when it stored. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Removes `key`. */
  delete(key: string): Promise<void>;
  /**
   * Takes or extends the lease `name` for `holder` for `ttlMs`: true when `holder` holds it now
   * (it was free, expired, or already `holder`'s), false while another holder has it. For work
   * that one replica should do for all, such as polling an async run.
   */
  lease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease `name` back, if `holder` holds it. */
  releaseLease(name: string, holder: string): Promise<void>;
  /** Whether the store answers now. */
  health(): StateHealth;
  /** Sends what is deferred (best effort), then lets go of the connection. */
  close(): Promise<void>;
}
