import { Code, ConnectError } from "@connectrpc/connect";
import { CozeError, type CozeErrorCode } from "../coze/errors.js";

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
  /** Seconds to wait before retrying, when Coze said. */
  retryAfter: "retry-after",
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
  bad_request: Code.InvalidArgument,
  unavailable: Code.Unavailable,
  timeout: Code.DeadlineExceeded,
  canceled: Code.Canceled,
  protocol: Code.Internal,
  // Coze accepted the work and reports it failed: neither the caller's fault nor ours.
  failed: Code.Unknown,
};

/** Text of the wire message for each code; the step is prefixed. Short, safe, ours. */
const upstreamText: Record<CozeErrorCode, string> = {
  authentication: "the gateway could not authenticate to Coze",
  permission: "Coze denied access to this resource",
  not_found: "Coze does not know this resource",
  rate_limited: "Coze rate limit or quota reached",
  bad_request: "Coze rejected the request",
  unavailable: "Coze is unavailable",
  timeout: "Coze did not answer in time",
  canceled: "canceled",
  protocol: "Coze sent a response the gateway cannot read",
  failed: "Coze reported a failure",
};

/**
 * The one place where errors become `ConnectError`s (STYLE.md "Errors"). A `ConnectError` passes
 * through; a {@link CozeError} gets its Connect code, a safe message naming the upstream step and
 * Coze's code, and metadata with the codes and log id; anything else is `Internal` with a
 * generic message (its text may hold anything, so it never reaches the caller).
 *
 * `signal` is the call's own (`ctx.signal`). When it aborted with a `ConnectError` and the
 * failure is that abort (a `canceled` CozeError: the upstream call was cut), the abort reason is
 * the answer: a passed deadline stays `DeadlineExceeded` and a shutdown `Unavailable`, not
 * `Canceled` (issue #13: only a caller that went away is a cancel).
 */
export function toConnectError(err: unknown, signal?: AbortSignal): ConnectError {
  if (err instanceof ConnectError) return err;
  if (
    signal?.aborted === true &&
    signal.reason instanceof ConnectError &&
    err instanceof CozeError &&
    err.code === "canceled"
  ) {
    return signal.reason;
  }
  if (err instanceof CozeError) {
    const metadata = new Headers();
    metadata.set(errorHeaders.code, err.code);
    metadata.set(errorHeaders.step, err.step);
    if (err.cozeCode !== undefined && err.cozeCode !== "") {
      metadata.set(errorHeaders.cozeCode, String(err.cozeCode));
    }
    if (err.logId) metadata.set(errorHeaders.logId, err.logId);
    if (err.retryAfterMs !== undefined) {
      metadata.set(errorHeaders.retryAfter, String(Math.ceil(err.retryAfterMs / 1000)));
    }
    const coze =
      err.cozeCode !== undefined && err.cozeCode !== "" ? ` (Coze code ${err.cozeCode})` : "";
    return new ConnectError(
      `${err.step}: ${upstreamText[err.code]}${coze}`,
      connectCodes[err.code],
      metadata,
      undefined,
      err,
    );
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

/** A caller mistake: `InvalidArgument` naming the field and what is wrong with it. */
export function invalidArgument(field: string, problem: string): ConnectError {
  const metadata = new Headers({ [errorHeaders.code]: "invalid_argument" });
  return new ConnectError(`${field}: ${problem}`, Code.InvalidArgument, metadata);
}

/** An unknown model, channel or similar: `NotFound` naming it. */
export function notFound(message: string): ConnectError {
  return new ConnectError(
    message,
    Code.NotFound,
    new Headers({ [errorHeaders.code]: "not_found" }),
  );
}

/** A caller that may not use a model: `PermissionDenied`. */
export function permissionDenied(message: string): ConnectError {
  return new ConnectError(
    message,
    Code.PermissionDenied,
    new Headers({ [errorHeaders.code]: "permission_denied" }),
  );
}
