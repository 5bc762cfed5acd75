import { Code, ConnectError } from "@connectrpc/connect";
import {
  CozeError,
  GatewayError,
  suggestedRetryAfterMs,
  upstreamMessage,
} from "../service/index.js";

/**
 * OpenAI's error classes as this shim uses them (the `type` of an error body). A key's own
 * limits are worded as OpenAI words them: `requests` or `tokens` with `rate_limit_exceeded`, and
 * `insufficient_quota`, which also types Coze's spent quota or balance.
 */
export type OpenAiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "rate_limit_error"
  | "requests"
  | "tokens"
  | "insufficient_quota"
  | "server_error";

/** The object under `error` in an OpenAI error body. */
export interface OpenAiErrorObject {
  /** Short, safe and ours: it reaches the client verbatim. */
  message: string;
  type: OpenAiErrorType;
  /** A stable machine-readable code, e.g. `model_not_found`; `null` when none applies. */
  code: string | null;
  /** The request field at fault, named as OpenAI does (`messages[2].content`); else `null`. */
  param: string | null;
  /**
   * Extension: the workflow run the error is about, when one was started (issue 16); look it
   * up or re-attach with `GET /v1/workflow_runs/{execute_id}`.
   */
  execute_id?: string;
}

/**
 * An error the shim answers with `status` and an OpenAI error body
 * (`{"error":{"message","type","code","param"}}`), plus `headers` (`Retry-After`,
 * `X-Coze-Logid`). Thrown by request validation; {@link toOpenAiError} makes one from anything.
 */
export class OpenAiError extends Error {
  override readonly name = "OpenAiError";
  readonly status: number;
  readonly body: OpenAiErrorObject;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, body: OpenAiErrorObject, headers: Record<string, string> = {}) {
    super(body.message);
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

/** The response header naming the workflow run an answer or an error is about. */
export const executeIdHeader = "x-coze-execute-id";

/**
 * `err` as an error about workflow run `executeId` (issue 16): `execute_id` in the body, the
 * `X-Coze-Execute-Id` header, and `x-should-retry: false`, so the OpenAI SDKs do not retry on
 * their own a request that started a run (a retry would start another one; the client can find
 * this one by its id instead). `hint`, when given, is added to the message.
 */
export function withExecuteId(err: OpenAiError, executeId: string, hint?: string): OpenAiError {
  const message = hint ? `${err.body.message}; ${hint}` : err.body.message;
  return new OpenAiError(
    err.status,
    { ...err.body, message, execute_id: executeId },
    { ...err.headers, [executeIdHeader]: executeId, "x-should-retry": "false" },
  );
}

/** A 400 for a bad request field (issue #4: "400 naming the field"). */
export function badRequest(param: string | null, message: string, code: string): OpenAiError {
  return new OpenAiError(400, { message, type: "invalid_request_error", code, param });
}

/**
 * Maps what a service call threw to the OpenAI error a REST client gets (issue #4 decision 5),
 * from the facts the error carries, never from its text:
 * - the core's {@link GatewayError}: `invalid_argument` → 400 with `param` = its field,
 *   `permission_denied` → 403, `not_found` → 404 (`model_not_found` when the field is the
 *   model), `resource_exhausted` → 429 with `Retry-After`, `unavailable` → 503, and the
 *   gateway's own limits → 429 with `Retry-After` and the key's `x-ratelimit-*` headers
 *   (`rate_limit_exceeded` typed `requests` or `tokens`, `insufficient_quota`,
 *   `too_many_streams`, `channel_busy`);
 * - an upstream {@link CozeError}: by its code (`bad_request` 400, `permission` 403, `not_found`
 *   404, `unavailable` 503, `timeout` 504, `still_running` 504 with code `still_running`, a
 *   failed, unreadable or unauthenticated upstream step 502), with `X-Coze-Logid` and
 *   `Retry-After`; Coze's own limits (coze-api.md §17.2) apart from the gateway's
 *   (`rate_limit_exceeded`, `insufficient_quota`): `rate_limited` 429 `coze_rate_limited` with
 *   `Retry-After` (Coze's, else {@link suggestedRetryAfterMs}), and, with `x-should-retry: false`
 *   since no retry cures them, `quota_exceeded` 403 `coze_quota_exceeded`,
 *   `balance_insufficient` 402 `coze_balance_insufficient`, `plan_required` 403
 *   `coze_plan_required`;
 * - either about a workflow run: its `execute_id` too ({@link withExecuteId});
 * - the call's abort reason, a `ConnectError` from the server (shutdown `Unavailable` 503,
 *   deadline 504, a chat canceled by someone else 409);
 * - anything else: 500 "internal error", its text never used.
 */
export function toOpenAiError(err: unknown): OpenAiError {
  if (err instanceof OpenAiError) return err;
  if (err instanceof GatewayError) return aboutRun(fromGatewayError(err), err.executeId);
  if (err instanceof CozeError) return aboutRun(fromCozeError(err), err.executeId);
  if (err instanceof ConnectError) return fromAbortReason(err);
  return internalError({});
}

function fromGatewayError(err: GatewayError): OpenAiError {
  const body = (type: OpenAiErrorType, code: string, param: string | null = null) => ({
    message: err.message,
    type,
    code,
    param,
  });
  const field = err.field ?? null;
  switch (err.code) {
    case "invalid_argument":
      return new OpenAiError(400, body("invalid_request_error", "invalid_value", field));
    case "permission_denied":
      return new OpenAiError(403, body("permission_error", "permission_denied"));
    case "not_found":
      return field === "model"
        ? new OpenAiError(404, body("invalid_request_error", "model_not_found", "model"))
        : new OpenAiError(404, body("invalid_request_error", "not_found", field));
    case "resource_exhausted":
      return new OpenAiError(
        429,
        body("rate_limit_error", "rate_limit_exceeded"),
        retryAfter({}, err.retryAfterMs),
      );
    case "rate_limit_exceeded":
    case "insufficient_quota":
    case "too_many_streams":
    case "channel_busy": {
      const type =
        err.code === "insufficient_quota"
          ? "insufficient_quota"
          : err.code === "rate_limit_exceeded"
            ? err.limit?.kind === "tokens"
              ? "tokens"
              : "requests"
            : "rate_limit_error";
      const headers = retryAfter({ ...err.limit?.headers }, err.retryAfterMs);
      return new OpenAiError(429, body(type, err.code), headers);
    }
    case "unavailable":
      return new OpenAiError(
        503,
        body("server_error", "unavailable"),
        retryAfter({}, err.retryAfterMs),
      );
  }
}

function fromCozeError(err: CozeError): OpenAiError {
  const headers: Record<string, string> = {};
  if (err.logId) headers["x-coze-logid"] = err.logId;
  const make = (status: number, type: OpenAiErrorType, code: string) =>
    new OpenAiError(status, { message: upstreamMessage(err), type, code, param: null }, headers);
  switch (err.code) {
    case "bad_request":
      return make(400, "invalid_request_error", "upstream_bad_request");
    case "permission":
      return make(403, "permission_error", "permission_denied");
    case "not_found":
      return make(404, "invalid_request_error", "not_found");
    case "rate_limited":
      retryAfter(headers, suggestedRetryAfterMs(err));
      return make(429, "rate_limit_error", "coze_rate_limited");
    case "quota_exceeded":
      headers["x-should-retry"] = "false";
      return make(403, "insufficient_quota", "coze_quota_exceeded");
    case "balance_insufficient":
      headers["x-should-retry"] = "false";
      return make(402, "insufficient_quota", "coze_balance_insufficient");
    case "plan_required":
      headers["x-should-retry"] = "false";
      return make(403, "permission_error", "coze_plan_required");
    case "unavailable":
      return make(503, "server_error", "unavailable");
    case "timeout":
      return make(504, "server_error", "timeout");
    case "still_running":
      // The gateway stopped waiting (the channel's `max_polls`); the run goes on at Coze.
      return make(504, "server_error", "still_running");
    case "canceled":
      // Reached only while the client still waits: the chat was canceled by someone else
      // (CancelChat). A client that went away gets no answer at all.
      return make(409, "invalid_request_error", "canceled");
    case "failed":
    case "protocol":
    case "authentication":
      return make(502, "server_error", "upstream_error");
  }
}

function aboutRun(err: OpenAiError, executeId: string | undefined): OpenAiError {
  return executeId ? withExecuteId(err, executeId) : err;
}

/** The server's abort reasons: shutdown, a passed deadline, a cancel. */
function fromAbortReason(err: ConnectError): OpenAiError {
  const make = (status: number, type: OpenAiErrorType, code: string) =>
    new OpenAiError(status, { message: err.rawMessage, type, code, param: null });
  switch (err.code) {
    case Code.Unavailable:
      return make(503, "server_error", "unavailable");
    case Code.DeadlineExceeded:
      return make(504, "server_error", "timeout");
    case Code.Canceled:
      return make(409, "invalid_request_error", "canceled");
    default:
      return internalError({});
  }
}

function retryAfter(
  headers: Record<string, string>,
  ms: number | undefined,
): Record<string, string> {
  if (ms !== undefined) headers["retry-after"] = String(Math.ceil(ms / 1000));
  return headers;
}

function internalError(headers: Record<string, string>): OpenAiError {
  return new OpenAiError(
    500,
    { message: "internal error", type: "server_error", code: "internal_error", param: null },
    headers,
  );
}

/** The JSON text of an error body: `{"error":{…}}`. */
export function errorJson(err: OpenAiError): string {
  return JSON.stringify({ error: err.body });
}
