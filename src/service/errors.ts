import { Code, ConnectError } from "@connectrpc/connect";
import { CozeError, type CozeErrorCode, suggestedRetryAfterMs } from "../coze/errors.js";
import { heldGoesOnText, heldLostText, isHeldRunHandle } from "./held-run-id.js";

/**
 * Metadata keys every gateway error carries, so any client (and the REST shim) can tell what
 * failed without parsing messages. Values are ours or Coze's codes and log ids, never secrets.
 */
export const errorHeaders = {
  /** Our stable error code: a {@link CozeErrorCode}, or `invalid_argument` and friends. */
  code: "x-gateway-error",
  /** The upstream step that failed, e.g. `chat.stream` or `token`. */
  step: "x-coze-step",
  /** Coze's own error code. */
  cozeCode: "x-coze-code",
  /** Coze's log id, for support requests. */
  logId: "x-coze-logid",
  /**
   * Seconds to wait before retrying: when Coze said, or for a Coze rate limit the gateway's
   * default (`suggestedRetryAfterMs`); never on a quota, balance or plan error.
   */
  retryAfter: "retry-after",
  /**
   * The workflow run the error is about (the id as handed out, bound to the caller's key):
   * read it with GetWorkflowRun, or watch it with WatchWorkflow (issue 16).
   */
  executeId: "x-coze-execute-id",
} as const;

/** Response header naming the channel (Coze app or account) that served the request. */
export const channelHeader = "x-gateway-channel";

const connectCodes: Record<CozeErrorCode, Code> = {
  // Coze rejecting the gateway's own credentials is the operator's problem, not the caller's:
  // Unauthenticated would tell the caller its API key is wrong.
  authentication: Code.Internal,
  permission: Code.PermissionDenied,
  not_found: Code.NotFound,
  rate_limited: Code.ResourceExhausted,
  // coze-api.md §17.2: a quota is a resource exhausted until Coze resets it (no retry-after);
  // a balance is the account's state, fixed by a recharge; a plan lacks the feature.
  quota_exceeded: Code.ResourceExhausted,
  balance_insufficient: Code.FailedPrecondition,
  plan_required: Code.PermissionDenied,
  bad_request: Code.InvalidArgument,
  unavailable: Code.Unavailable,
  timeout: Code.DeadlineExceeded,
  canceled: Code.Canceled,
  protocol: Code.Internal,
  // Coze accepted the work and reports it failed: neither the caller's fault nor ours.
  failed: Code.Unknown,
  // The gateway stopped waiting for work that goes on at Coze (issue 16).
  still_running: Code.DeadlineExceeded,
};

/** Text of the wire message for each code; the step is prefixed. Short, safe, ours. */
const upstreamText: Record<CozeErrorCode, string> = {
  authentication: "the gateway could not authenticate to Coze",
  permission: "Coze denied access to this resource",
  not_found: "Coze does not know this resource",
  rate_limited: "Coze rate limit reached, retry later",
  quota_exceeded:
    "Coze usage quota exhausted; it resets on Coze's schedule, retrying now will not help",
  balance_insufficient:
    "the Coze account's balance is insufficient; recharge it, retrying will not help",
  plan_required: "the Coze account's plan does not include this feature",
  bad_request: "Coze rejected the request",
  unavailable: "Coze is unavailable",
  timeout: "Coze did not answer in time",
  canceled: "canceled",
  protocol: "Coze sent a response the gateway cannot read",
  failed: "Coze reported a failure",
  still_running: "still running on Coze when the gateway stopped waiting",
};

/**
 * What the gateway itself refuses, as a stable code. The gateway's own limits have codes of
 * their own (`rate_limit_exceeded`, `insufficient_quota`, `too_many_streams`, `channel_busy`),
 * never Coze's `rate_limited`: an operator can tell which one hit.
 */
export type GatewayErrorCode =
  | "invalid_argument"
  | "not_found"
  | "permission_denied"
  | "resource_exhausted"
  | "rate_limit_exceeded"
  | "insufficient_quota"
  | "too_many_streams"
  | "channel_busy"
  | "unavailable";

/**
 * Which of the gateway's limits refused a call: a key's requests per minute, its tokens per
 * minute or day, its quota, its streams open at once, or a channel's cap on calls to Coze.
 */
export type LimitKind = "requests" | "tokens" | "quota" | "streams" | "channel";

/** What a limit's refusal carries besides its code: which limit, and the key's figures. */
export interface LimitFacts {
  readonly kind: LimitKind;
  /**
   * OpenAI's `x-ratelimit-limit-*`, `x-ratelimit-remaining-*` and `x-ratelimit-reset-*`, by
   * lower-case name: response headers over REST, metadata over gRPC and Connect.
   */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * The core's own failure, carrying its facts as data (STYLE.md "Errors"): a stable code, the
 * request field at fault as the contract names it (`messages[1].role`, `execute_id`), and a
 * short safe problem. Upstream failures stay {@link CozeError}s (code, step, Coze's code and log
 * id, retry-after). Each door maps both exactly once: {@link toConnectError} for Connect, the
 * OpenAI doors to HTTP statuses and error bodies; nothing parses the message.
 */
export class GatewayError extends Error {
  override readonly name = "GatewayError";
  readonly code: GatewayErrorCode;
  /** The request field at fault; `undefined` when the request as a whole is. */
  readonly field: string | undefined;
  /** How long to wait before trying again, in ms, when known. */
  readonly retryAfterMs: number | undefined;
  /** The workflow run the error is about, as handed out to the caller (issue 16). */
  readonly executeId: string | undefined;
  /** For a refusal by one of the gateway's limits: which one, and the figures to send. */
  readonly limit: LimitFacts | undefined;

  /** `message` is short, safe and ours: it reaches the caller verbatim. */
  constructor(
    code: GatewayErrorCode,
    message: string,
    options: {
      field?: string;
      retryAfterMs?: number;
      limit?: LimitFacts;
      cause?: unknown;
      executeId?: string;
    } = {},
  ) {
    super(message, { cause: options.cause });
    this.code = code;
    this.field = options.field;
    this.retryAfterMs = options.retryAfterMs;
    this.executeId = options.executeId;
    this.limit = options.limit;
  }
}

/**
 * `err` as an error about the workflow run `executeId` (the id as handed out): a
 * {@link GatewayError} or {@link CozeError} with the same facts and the run's id, which every
 * door then names (`x-coze-execute-id`, the REST error body). Anything else (an abort reason)
 * is returned as it is.
 */
export function aboutRun(err: unknown, executeId: string): unknown {
  if (executeId === "") return err;
  if (err instanceof CozeError) return err.withExecuteId(executeId);
  if (err instanceof GatewayError) {
    return new GatewayError(err.code, err.message, {
      field: err.field,
      retryAfterMs: err.retryAfterMs,
      cause: err.cause,
      executeId,
    });
  }
  return err;
}

/** A caller mistake: `invalid_argument`, naming the field and what is wrong with it. */
export function invalidArgument(field: string, problem: string): GatewayError {
  return new GatewayError("invalid_argument", `${field}: ${problem}`, { field });
}

/**
 * Something the request names does not exist for this caller (a model, a channel, an id handed
 * to another key): `not_found`, naming the field.
 */
export function notFound(field: string, message: string): GatewayError {
  return new GatewayError("not_found", message, { field });
}

/** A caller that may not use what it names (a model outside its allow-list). */
export function permissionDenied(field: string, message: string): GatewayError {
  return new GatewayError("permission_denied", message, { field });
}

const gatewayCodes: Record<GatewayErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  rate_limit_exceeded: Code.ResourceExhausted,
  insufficient_quota: Code.ResourceExhausted,
  too_many_streams: Code.ResourceExhausted,
  channel_busy: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
};

/**
 * The Connect door's one mapping (STYLE.md "Errors"). A `ConnectError` passes through; a
 * {@link GatewayError} gets its code and `x-gateway-error` metadata (and a limit's `retry-after`
 * and `x-ratelimit-*` figures); a {@link CozeError} gets its
 * Connect code, a safe message naming the upstream step and Coze's code, and metadata with the
 * codes and log id; anything else is `Internal` with a generic message (its text may hold
 * anything, so it never reaches the caller).
 *
 * `signal` is the call's own (`ctx.signal`). When it aborted with a `ConnectError` and the
 * failure is that abort (a `canceled` CozeError: the upstream call was cut), the abort reason is
 * the answer: a passed deadline stays `DeadlineExceeded` and a shutdown `Unavailable`, not
 * `Canceled` (issue #13: only a caller that went away is a cancel).
 */
export function toConnectError(err: unknown, signal?: AbortSignal): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof GatewayError) {
    const metadata = new Headers({ [errorHeaders.code]: err.code, ...err.limit?.headers });
    if (err.retryAfterMs !== undefined) {
      metadata.set(errorHeaders.retryAfter, String(Math.ceil(err.retryAfterMs / 1000)));
    }
    if (err.executeId) metadata.set(errorHeaders.executeId, err.executeId);
    return new ConnectError(err.message, gatewayCodes[err.code], metadata, undefined, err);
  }
  if (
    signal?.aborted === true &&
    signal.reason instanceof ConnectError &&
    err instanceof CozeError &&
    err.code === "canceled"
  ) {
    return err.executeId ? runCutError(signal.reason, err.executeId) : signal.reason;
  }
  if (err instanceof CozeError) {
    const metadata = new Headers();
    metadata.set(errorHeaders.code, err.code);
    metadata.set(errorHeaders.step, err.step);
    if (err.cozeCode !== undefined && err.cozeCode !== "") {
      metadata.set(errorHeaders.cozeCode, String(err.cozeCode));
    }
    if (err.logId) metadata.set(errorHeaders.logId, err.logId);
    const retryAfterMs = suggestedRetryAfterMs(err);
    if (retryAfterMs !== undefined) {
      metadata.set(errorHeaders.retryAfter, String(Math.ceil(retryAfterMs / 1000)));
    }
    let message = upstreamMessage(err);
    if (err.executeId) {
      metadata.set(errorHeaders.executeId, err.executeId);
      if (err.code === "still_running") message += `; ${reattachHint(err.executeId)}`;
    }
    return new ConnectError(message, connectCodes[err.code], metadata, undefined, err);
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

/**
 * The safe text of an upstream failure: the step, what went wrong, Coze's code, and the error's
 * hint (what to fix, e.g. a channel's refused personal access token) when it has one.
 */
export function upstreamMessage(err: CozeError): string {
  const coze =
    err.cozeCode !== undefined && err.cozeCode !== "" ? ` (Coze code ${err.cozeCode})` : "";
  const hint = err.hint === undefined ? "" : `: ${err.hint}`;
  const text =
    err.code === "still_running" && err.executeId && isHeldRunHandle(err.executeId)
      ? "still running in the gateway when it stopped waiting"
      : upstreamText[err.code];
  return `${err.step}: ${text}${coze}${hint}`;
}

/**
 * `reason` (a shutdown's `Unavailable`, a deadline) for a call that was about workflow run
 * `executeId` (issue 16): the run goes on at Coze, so the error names it (`x-coze-execute-id`)
 * and says which RPCs find it again; a run the gateway holds is lost at shutdown, and says so.
 */
export function runCutError(reason: ConnectError, executeId: string): ConnectError {
  const metadata = new Headers(reason.metadata);
  metadata.set(errorHeaders.executeId, executeId);
  const message = `${reason.rawMessage}; ${reattachHint(executeId, reason.code === Code.Unavailable)}`;
  return new ConnectError(message, reason.code, metadata, undefined, reason);
}

/**
 * `err` without the metadata the call's response headers carry already with the same value
 * (`x-coze-execute-id`, set as soon as a run started): a client reads headers and trailers as
 * one map, where a repeated value would read `id, id`.
 */
export function withoutSentHeaders(err: ConnectError, sent: Headers): ConnectError {
  const value = err.metadata.get(errorHeaders.executeId);
  if (value !== null && sent.get(errorHeaders.executeId) === value) {
    err.metadata.delete(errorHeaders.executeId);
  }
  return err;
}

/**
 * How a Connect caller finds a run again: the RPCs that take its execute id. A run the gateway
 * holds goes on in this process, and ends with it (`shutdown`: the server stops).
 */
function reattachHint(executeId: string, shutdown = false): string {
  const rpcs = `pass execute_id ${executeId} to WorkflowService.WatchWorkflow or WorkflowService.GetWorkflowRun`;
  if (!isHeldRunHandle(executeId)) return `the workflow run goes on at Coze: ${rpcs}`;
  return shutdown ? heldLostText : `${heldGoesOnText}: ${rpcs}`;
}
