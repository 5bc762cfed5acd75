import { errors as undiciErrors } from "undici";

/**
 * What went wrong, as a stable string the layers above switch on. The RPC boundary maps each
 * code to one Connect code and the REST shim to one HTTP status.
 *
 * - `authentication`: Coze rejected our credentials (JWT or access token).
 * - `permission`: the token is valid but may not use the resource.
 * - `not_found`: the bot, workflow, conversation, chat or run does not exist.
 * - `rate_limited`: Coze throttled us for now (coze-api.md §17.2: 4009, 4013, 4020, 4102, HTTP
 *   429): waiting helps; `retryAfterMs` when Coze said.
 * - `quota_exceeded`: a usage quota that resets on Coze's own schedule ran out (4008 the bot's
 *   daily limit, 4028 the credits until their refresh): retrying soon does not help.
 * - `balance_insufficient`: the Coze account (or its Volcengine / Ark account) is out of balance
 *   or in arrears (4011, 4019, 4022, 4027, 788788103): only a recharge helps.
 * - `plan_required`: the Coze plan does not include the feature (6003, `is_async` on a free
 *   plan, §14.1): only an upgrade helps.
 * - `bad_request`: Coze refused the request's parameters.
 * - `unavailable`: Coze could not be reached, reset the connection or answered 5xx.
 * - `timeout`: a connect, headers, body, idle or overall deadline passed.
 * - `canceled`: the caller aborted.
 * - `protocol`: Coze answered something this client cannot understand.
 * - `failed`: Coze accepted the work and reports that it failed (a failed chat or workflow
 *   run), or answered an error code this client does not classify.
 * - `still_running`: the poller gave up (`maxPolls`, or the deadline before the next poll)
 *   while Coze kept answering that the work is still running: it goes on at Coze.
 */
export type CozeErrorCode =
  | "authentication"
  | "permission"
  | "not_found"
  | "rate_limited"
  | "quota_exceeded"
  | "balance_insufficient"
  | "plan_required"
  | "bad_request"
  | "unavailable"
  | "timeout"
  | "canceled"
  | "protocol"
  | "failed"
  | "still_running";

/** Options for {@link CozeError}. */
export interface CozeErrorOptions {
  /** The upstream step that failed, such as `token`, `chat.create` or `workflow.history`. */
  step: string;
  /** The underlying error, kept for debugging; never rendered on the wire. */
  cause?: unknown;
  /** HTTP status of the upstream response, when there was one. */
  status?: number;
  /** Coze's own error code: a number for API envelopes, a string for OAuth errors. */
  cozeCode?: number | string;
  /**
   * Coze's own error text. Kept apart from `message` because it is upstream text: it may be
   * logged at debug level but never goes into a message on the wire.
   */
  cozeMessage?: string;
  /** Coze's log id (`X-Tt-Logid` or `detail.logid`), for support requests. */
  logId?: string;
  /** How long Coze asked us to wait before retrying, in milliseconds. */
  retryAfterMs?: number;
  /**
   * The workflow run the failure is about, when one was started: the raw Coze id here; the
   * core hands out the id bound to the caller's key instead.
   */
  executeId?: string;
  /**
   * A sentence of ours naming what to fix and where, such as the channel whose personal access
   * token Coze refused. Safe for the wire: never a token, a key or upstream text.
   */
  hint?: string;
}

/**
 * The one error type of the Coze client. `message` is short, safe and ours: it names the step
 * and the kind of failure, never a token, a key or an upstream body.
 */
export class CozeError extends Error {
  override readonly name = "CozeError";
  readonly code: CozeErrorCode;
  readonly step: string;
  readonly status: number | undefined;
  readonly cozeCode: number | string | undefined;
  readonly cozeMessage: string | undefined;
  readonly logId: string | undefined;
  readonly retryAfterMs: number | undefined;
  readonly executeId: string | undefined;
  readonly hint: string | undefined;

  constructor(code: CozeErrorCode, message: string, options: CozeErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.step = options.step;
    this.status = options.status;
    this.cozeCode = options.cozeCode;
    this.cozeMessage = options.cozeMessage;
    this.logId = options.logId;
    this.retryAfterMs = options.retryAfterMs;
    this.executeId = options.executeId;
    this.hint = options.hint;
  }

  /** This error about run `executeId` (same facts, same cause). */
  withExecuteId(executeId: string): CozeError {
    return new CozeError(this.code, this.message, {
      step: this.step,
      cause: this.cause,
      status: this.status,
      cozeCode: this.cozeCode,
      cozeMessage: this.cozeMessage,
      logId: this.logId,
      retryAfterMs: this.retryAfterMs,
      executeId,
      hint: this.hint,
    });
  }
}

/** True when `err` is a {@link CozeError}, optionally with one of the given codes. */
export function isCozeError(err: unknown, ...codes: CozeErrorCode[]): err is CozeError {
  return err instanceof CozeError && (codes.length === 0 || codes.includes(err.code));
}

const codeText: Record<CozeErrorCode, string> = {
  authentication: "authentication failed",
  permission: "permission denied",
  not_found: "not found",
  rate_limited: "rate limited",
  quota_exceeded: "quota exceeded",
  balance_insufficient: "balance insufficient",
  plan_required: "not included in the Coze plan",
  bad_request: "request rejected",
  unavailable: "unavailable",
  timeout: "timed out",
  canceled: "canceled",
  protocol: "unexpected response",
  failed: "failed",
  still_running: "still running",
};

/** Builds the standard safe message: `<step>: <what> [(Coze code N)]`. */
export function safeMessage(code: CozeErrorCode, step: string, cozeCode?: number | string): string {
  const suffix = cozeCode === undefined || cozeCode === "" ? "" : ` (Coze code ${cozeCode})`;
  return `${step}: ${codeText[code]}${suffix}`;
}

// Coze API codes with a meaning of their own (coze-api.md §1.5, §14.3, §17.2). Anything else that
// is not 0 is `failed`, unless the HTTP status says more.
const apiCodes: ReadonlyMap<number, CozeErrorCode> = new Map<number, CozeErrorCode>([
  [4000, "bad_request"],
  [4003, "bad_request"],
  [4004, "bad_request"],
  [4010, "bad_request"],
  [4012, "bad_request"],
  [4016, "bad_request"],
  [4104, "bad_request"],
  // §14.3: the execution already finished (or used its 3 resumes): it cannot be resumed.
  [4315, "bad_request"],
  [4001, "not_found"],
  [4002, "not_found"],
  [4005, "not_found"],
  [4006, "not_found"],
  [4015, "not_found"],
  [4200, "not_found"],
  // §14.3: no execution record for this interrupt.
  [4314, "not_found"],
  [4100, "authentication"],
  [700012006, "authentication"],
  [4101, "permission"],
  // §17.2, "retry?" column: the four whose waiting helps...
  [4009, "rate_limited"],
  [4013, "rate_limited"],
  [4020, "rate_limited"],
  [4102, "rate_limited"],
  // ...and those it does not: a quota until its reset, a balance until a recharge, a plan.
  [4008, "quota_exceeded"],
  [4028, "quota_exceeded"],
  [4011, "balance_insufficient"],
  [4019, "balance_insufficient"],
  [4022, "balance_insufficient"],
  [4027, "balance_insufficient"],
  [788788103, "balance_insufficient"],
  [6003, "plan_required"],
  [5000, "unavailable"],
]);

/** The class of a Coze API code in §1.5 / §17.2, or `undefined` for a code without one. */
export function codeOfCozeCode(cozeCode: number): CozeErrorCode | undefined {
  return apiCodes.get(cozeCode);
}

/**
 * The wait to suggest to a caller before trying again, in ms: what Coze said (`Retry-After`),
 * else, for `rate_limited` only, a default, since no source shows Coze sending one (§17.2):
 * 60 s for 4020 (a per-minute quota: the next minute), 5 s otherwise. `undefined` for every
 * error that waiting does not cure (quota, balance, plan: {@link isFinalLimit}) and for those
 * that say nothing.
 */
export function suggestedRetryAfterMs(err: CozeError): number | undefined {
  if (isFinalLimit(err)) return undefined;
  if (err.retryAfterMs !== undefined) return err.retryAfterMs;
  if (err.code !== "rate_limited") return undefined;
  return err.cozeCode === 4020 ? 60_000 : 5_000;
}

/**
 * True for the errors whose cause no retry cures: a quota, a balance or a plan (§17.2). Nothing
 * sends such a call again, on this channel or after a wait.
 */
export function isFinalLimit(err: CozeError): boolean {
  return (
    err.code === "quota_exceeded" ||
    err.code === "balance_insufficient" ||
    err.code === "plan_required"
  );
}

/** Classifies an HTTP status alone; `undefined` for 2xx and statuses with no clear meaning. */
export function codeFromStatus(status: number): CozeErrorCode | undefined {
  if (status === 400 || status === 413 || status === 422) return "bad_request";
  if (status === 401) return "authentication";
  if (status === 403) return "permission";
  if (status === 404) return "not_found";
  if (status === 408 || status === 504) return "timeout";
  if (status === 429) return "rate_limited";
  if (status >= 500) return "unavailable";
  if (status >= 400) return "failed";
  return undefined;
}

/**
 * Classifies a Coze API error envelope (`{code, msg}`, code ≠ 0). A known Coze code wins over
 * the HTTP status; an unknown one falls back to the status, then to `failed`.
 */
export function codeFromCoze(cozeCode: number, status: number): CozeErrorCode {
  return apiCodes.get(cozeCode) ?? codeFromStatus(status) ?? "failed";
}

// OAuth token endpoint errors (coze-api.md §2.4).
const oauthCodes: ReadonlyMap<string, CozeErrorCode> = new Map<string, CozeErrorCode>([
  ["invalid_client", "authentication"],
  ["invalid_grant", "authentication"],
  ["access_deny", "permission"],
  ["access_denied", "permission"],
  ["invalid_request", "bad_request"],
  ["unsupported_grant_type", "bad_request"],
  ["internal_error", "unavailable"],
]);

/** Classifies an OAuth error (`error_code` / `error`), falling back to the HTTP status. */
export function codeFromOAuth(oauthCode: string, status: number): CozeErrorCode {
  return oauthCodes.get(oauthCode) ?? codeFromStatus(status) ?? "authentication";
}

/**
 * Parses a `Retry-After` header (delta seconds or an HTTP date) into milliseconds from `now`.
 * Returns `undefined` when absent or unparsable; never negative.
 */
export function parseRetryAfter(
  value: string | string[] | undefined,
  now: number,
): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw.trim() === "") return undefined;
  const trimmed = raw.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * Turns whatever an undici call threw into a {@link CozeError}. An abort caused by `signal`
 * becomes `canceled`, or `timeout` when the abort reason is a `TimeoutError` (as with
 * `AbortSignal.timeout`); undici's timeout errors become `timeout`; socket and DNS failures
 * become `unavailable`. A `CozeError` passes through unchanged.
 */
export function fromTransportError(step: string, err: unknown, signal?: AbortSignal): CozeError {
  if (err instanceof CozeError) return err;
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    if (reason instanceof CozeError) return reason;
    const timedOut = reason instanceof Error && reason.name === "TimeoutError";
    return new CozeError(
      timedOut ? "timeout" : "canceled",
      safeMessage(timedOut ? "timeout" : "canceled", step),
      { step, cause: err },
    );
  }
  if (
    err instanceof undiciErrors.ConnectTimeoutError ||
    err instanceof undiciErrors.HeadersTimeoutError ||
    err instanceof undiciErrors.BodyTimeoutError
  ) {
    return new CozeError("timeout", safeMessage("timeout", step), { step, cause: err });
  }
  if (err instanceof Error && err.name === "AbortError") {
    return new CozeError("canceled", safeMessage("canceled", step), { step, cause: err });
  }
  return new CozeError("unavailable", safeMessage("unavailable", step), { step, cause: err });
}
