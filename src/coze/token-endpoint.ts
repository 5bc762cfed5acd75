import { type Dispatcher, request } from "undici";
import type { Clock } from "./clock.js";
import { apiCodeError, bodyLogId, headerValue, oauthError } from "./envelope.js";
import {
  CozeError,
  codeFromStatus,
  fromTransportError,
  parseRetryAfter,
  safeMessage,
} from "./errors.js";
import { type Json, readCapped, tryParseObject } from "./wire.js";

const step = "token";

// A token response is a few short fields. Anything past this is not a token response, and reading
// it all would only cost memory.
const maxBodyBytes = 64 * 1024;

/** The grant of the JWT flow (coze-api.md §2.2). */
export const jwtBearerGrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/**
 * The path of the token endpoint (coze-api.md §2.2): `/api/permission/oauth2/token`, or the
 * account variant `/api/permission/oauth2/account/{accountId}/token`, or the enterprise variant
 * `/api/permission/oauth2/enterprise_id/{enterpriseId}/token`. Ids are percent-encoded.
 *
 * @throws TypeError when both ids are set: the two variants exclude each other.
 */
export function tokenPath(accountId?: string, enterpriseId?: string): string {
  if (accountId !== undefined && enterpriseId !== undefined) {
    throw new TypeError("set at most one of accountId and enterpriseId");
  }
  if (accountId !== undefined) {
    return `/api/permission/oauth2/account/${encodeURIComponent(accountId)}/token`;
  }
  if (enterpriseId !== undefined) {
    return `/api/permission/oauth2/enterprise_id/${encodeURIComponent(enterpriseId)}/token`;
  }
  return "/api/permission/oauth2/token";
}

/** One exchange of a signed JWT for an access token. */
export interface TokenEndpointRequest {
  /** Full URL of the token endpoint: base URL plus {@link tokenPath}. */
  url: string;
  /** The dispatcher for the URL's origin (from `Pools.get`). */
  dispatcher: Dispatcher;
  /** A freshly signed JWT; sent as `authorization: Bearer <jwt>`. Never logged. */
  jwt: string;
  /** The OAuth app id, sent as `client_id` like the go SDK does (coze-api.md §2.2). */
  clientId: string;
  /** Requested token lifetime in seconds (`duration_seconds`). */
  durationSeconds: number;
  /** The `user-agent` header. */
  userAgent: string;
  /** Overall deadline of the request, body included, in milliseconds on `clock`. */
  timeoutMs: number;
  /** Times the deadline and resolves `Retry-After` dates. */
  clock: Clock;
  /** Aborts the request, e.g. when the token cache is cleared. */
  signal?: AbortSignal;
}

/** What the token endpoint granted. */
export interface TokenEndpointResponse {
  /** The access token. A secret: never log it. */
  accessToken: string;
  /** When the token expires, as an absolute Unix time in seconds (coze-api.md §2.3). */
  expiresIn: number;
  /** The server's clock at the response (its `Date` header), in epoch ms, when it sent one. */
  serverDateMs: number | undefined;
  /** Coze's `X-Tt-Logid`, when present. */
  logId: string | undefined;
}

/**
 * POSTs `{grant_type, duration_seconds, client_id}` with the JWT as bearer to the token endpoint
 * and reads the flat success body `{access_token, expires_in}` (coze-api.md §2.2, §2.3). The
 * response body is always consumed or destroyed.
 *
 * @throws CozeError with step `token`:
 *   - an OAuth error body `{error_code | error, error_message}` (coze-api.md §2.4), in any status,
 *     is classified by `codeFromOAuth`, with `cozeCode`, `cozeMessage` and `logId`;
 *   - an API envelope `{code ≠ 0, msg}` (code a number or a string of digits) by `codeFromCoze`,
 *     decoded like any Coze response (`apiCodeError`);
 *   - any other non-2xx by `codeFromStatus`; 429 and 503 carry `retryAfterMs` from `Retry-After`;
 *   - a 2xx that is not JSON, lacks `access_token` / `expires_in`, or is over 64 KiB: `protocol`;
 *   - the deadline: `timeout`; `signal`: `canceled`; socket and DNS failures: `unavailable`.
 */
export async function requestAccessToken(
  req: TokenEndpointRequest,
): Promise<TokenEndpointResponse> {
  const controller = new AbortController();
  const stopTimer = new AbortController();
  const onAbort = () => controller.abort(req.signal?.reason);
  if (req.signal?.aborted) onAbort();
  else req.signal?.addEventListener("abort", onAbort, { once: true });
  // The deadline runs on the injected clock, so tests can expire it without waiting.
  req.clock.sleep(req.timeoutMs, stopTimer.signal).then(
    () => controller.abort(timeoutReason()),
    () => {},
  );
  try {
    let response: Dispatcher.ResponseData;
    try {
      response = await request(req.url, {
        method: "POST",
        dispatcher: req.dispatcher,
        signal: controller.signal,
        headers: {
          authorization: `Bearer ${req.jwt}`,
          "content-type": "application/json",
          accept: "application/json",
          "user-agent": req.userAgent,
        },
        body: JSON.stringify({
          grant_type: jwtBearerGrantType,
          duration_seconds: req.durationSeconds,
          client_id: req.clientId,
        }),
      });
    } catch (err) {
      throw fromTransportError(step, err, controller.signal);
    }
    const { statusCode: status, headers, body } = response;
    let text: string | undefined;
    try {
      text = await readCapped(body, maxBodyBytes);
    } catch (err) {
      throw fromTransportError(step, err, controller.signal);
    } finally {
      body.destroy();
    }
    const logId = headerValue(headers, "x-tt-logid");
    const parsed = tryParseObject(text);
    const failure = errorFrom(parsed, status, headers, req.clock.now(), logId);
    if (failure !== undefined) throw failure;
    const accessToken = parsed?.access_token;
    const expiresIn = parsed?.expires_in;
    if (
      typeof accessToken !== "string" ||
      accessToken === "" ||
      typeof expiresIn !== "number" ||
      !Number.isFinite(expiresIn) ||
      expiresIn <= 0
    ) {
      throw new CozeError("protocol", safeMessage("protocol", step), { step, status, logId });
    }
    const date = headerValue(headers, "date");
    const serverDateMs = date === undefined ? undefined : Date.parse(date);
    return {
      accessToken,
      expiresIn,
      serverDateMs:
        serverDateMs === undefined || Number.isNaN(serverDateMs) ? undefined : serverDateMs,
      logId,
    };
  } finally {
    stopTimer.abort();
    req.signal?.removeEventListener("abort", onAbort);
  }
}

function timeoutReason(): Error {
  const reason = new Error("token request deadline passed");
  reason.name = "TimeoutError";
  return reason;
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

// The error a token response stands for, or undefined when it is a success status with no error
// fields. The body decides before the status, like the go SDK (coze-api.md §1.4, §2.4): first the
// flat OAuth error of the token endpoint, then an API envelope `{code, msg}` as every Coze
// response decodes it.
function errorFrom(
  body: Json | undefined,
  status: number,
  headers: Dispatcher.ResponseData["headers"],
  now: number,
  headerLog: string | undefined,
): CozeError | undefined {
  const logId = headerLog ?? (body === undefined ? undefined : bodyLogId(body));
  const retryAfterMs =
    status === 429 || status === 503 ? parseRetryAfter(headers["retry-after"], now) : undefined;
  // go and the docs key on error_code, js device polling on error (coze-api.md §2.4, §9).
  const oauthCode = nonEmpty(body?.error_code) ?? nonEmpty(body?.error);
  if (oauthCode !== undefined) {
    const message = nonEmpty(body?.error_message) ?? nonEmpty(body?.error_description);
    return oauthError(step, status, oauthCode, message, logId, retryAfterMs);
  }
  const api =
    body === undefined ? undefined : apiCodeError(step, status, body, logId, retryAfterMs);
  if (api !== undefined || (status >= 200 && status < 300)) return api;
  const code = codeFromStatus(status) ?? "protocol";
  return new CozeError(code, safeMessage(code, step), { step, status, logId, retryAfterMs });
}
