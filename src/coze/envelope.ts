import type { Dispatcher } from "undici";
import type { Clock } from "./clock.js";
import {
  CozeError,
  codeFromCoze,
  codeFromOAuth,
  codeFromStatus,
  fromTransportError,
  parseRetryAfter,
  safeMessage,
} from "./errors.js";
import { id, type Json, readCapped, tryParseObject } from "./wire.js";

/** A decoded JSON response whose envelope said success. */
export interface JsonResponse {
  body: Json;
  status: number;
  logId: string | undefined;
}

type Headers = Dispatcher.ResponseData["headers"];

/** The first value of response header `name` (lower case); `undefined` when absent or empty. */
export function headerValue(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined || first === "" ? undefined : first;
}

/** Coze's log id in a body's `detail.logid` (coze-api.md §1.3), when there is one. */
export function bodyLogId(body: Json): string | undefined {
  const detail = body.detail;
  if (typeof detail === "object" && detail !== null) {
    const id = (detail as Json).logid;
    if (typeof id === "string" && id !== "") return id;
  }
  return undefined;
}

/**
 * The error of a Coze API envelope `{code, msg}` (coze-api.md §1.3): a `code` other than 0, as a
 * number or a string of digits (the SDKs disagree, §9), classified by `codeFromCoze`.
 * `undefined` when the code is absent or 0.
 */
export function apiCodeError(
  step: string,
  status: number,
  body: Json,
  logId: string | undefined,
  retryAfterMs: number | undefined,
): CozeError | undefined {
  const rawCode = body.code;
  const numeric =
    typeof rawCode === "number"
      ? rawCode
      : typeof rawCode === "string" && /^-?\d+$/.test(rawCode)
        ? Number(rawCode)
        : undefined;
  if (numeric === undefined || numeric === 0) return undefined;
  const code = codeFromCoze(numeric, status);
  return new CozeError(code, safeMessage(code, step, numeric), {
    step,
    status,
    cozeCode: numeric,
    cozeMessage: typeof body.msg === "string" ? body.msg : undefined,
    logId,
    retryAfterMs,
    // A failed workflow run's envelope names the run (coze-api.md §5.1, §14.2).
    executeId: id(body.execute_id),
  });
}

/** The error of an OAuth error code (`error_code` / `error`, coze-api.md §2.4), by `codeFromOAuth`. */
export function oauthError(
  step: string,
  status: number,
  oauthCode: string,
  message: string | undefined,
  logId: string | undefined,
  retryAfterMs: number | undefined,
): CozeError {
  const code = codeFromOAuth(oauthCode, status);
  return new CozeError(code, safeMessage(code, step, oauthCode), {
    step,
    status,
    cozeCode: oauthCode,
    cozeMessage: message,
    logId,
    retryAfterMs,
  });
}

/**
 * The error of a failure event inside an open stream (`error` on chat streams, `Error` on
 * workflow streams; coze-api.md §4.5, §5.2): its code read as an API code under HTTP 200, and
 * `failed` when it is 0.
 */
export function streamEventError(
  step: string,
  cozeCode: number,
  message: string,
  logId: string | undefined,
): CozeError {
  const code = cozeCode === 0 ? "failed" : codeFromCoze(cozeCode, 200);
  return new CozeError(code, safeMessage(code, step, cozeCode || undefined), {
    step,
    cozeCode: cozeCode || undefined,
    cozeMessage: message,
    logId,
  });
}

/**
 * The error a Coze envelope describes, if any (coze-api.md §1.3, §1.4, §8): a non-zero `code`
 * ({@link apiCodeError}), a non-empty OAuth `error_code`/`error`, or an HTTP status that is an
 * error by itself. The body's log id wins over the header's.
 */
export function envelopeError(
  step: string,
  status: number,
  body: Json,
  headerLog: string | undefined,
  retryAfterMs?: number,
): CozeError | undefined {
  const logId = bodyLogId(body) ?? headerLog;
  const api = apiCodeError(step, status, body, logId, retryAfterMs);
  if (api !== undefined) return api;
  const oauth = [body.error_code, body.error].find((v) => typeof v === "string" && v !== "");
  if (typeof oauth === "string") {
    const message = typeof body.error_message === "string" ? body.error_message : undefined;
    return oauthError(step, status, oauth, message, logId, retryAfterMs);
  }
  const byStatus = codeFromStatus(status);
  if (byStatus !== undefined) {
    return new CozeError(byStatus, safeMessage(byStatus, step), {
      step,
      status,
      logId,
      retryAfterMs,
    });
  }
  return undefined;
}

/**
 * Reads a whole Coze JSON response, at most `maxBodyBytes`, and decides success from the body
 * and the status together (coze-api.md §1.3, §1.4, §8): an {@link envelopeError} is thrown; a
 * body without `code` is success; a body that is not a JSON object, or a non-JSON answer with a
 * status of 300 and above, is an error by its status (else `protocol`).
 *
 * @throws CozeError as above; `protocol` when the body is over `maxBodyBytes` (it is destroyed);
 *   a body that fails to arrive as {@link fromTransportError} says.
 */
export async function readEnvelope(
  step: string,
  res: Dispatcher.ResponseData,
  maxBodyBytes: number,
  signal: AbortSignal,
  clock: Clock,
): Promise<JsonResponse> {
  const { statusCode: status, headers, body: stream } = res;
  let text: string | undefined;
  try {
    text = await readCapped(stream, maxBodyBytes);
  } catch (err) {
    throw fromTransportError(step, err, signal);
  }
  if (text === undefined) {
    stream.destroy();
    throw new CozeError("protocol", `${step}: response body too large`, { step });
  }
  const logId = headerValue(headers, "x-tt-logid");
  const retryAfterMs = parseRetryAfter(headers["retry-after"], clock.now());
  const body = tryParseObject(text);
  if (body === undefined) throw statusError(step, status, logId, retryAfterMs);
  const error = envelopeError(step, status, body, logId, retryAfterMs);
  if (error !== undefined) throw error;
  if (status >= 300 && !headerValue(headers, "content-type")?.includes("json")) {
    throw statusError(step, status, logId, retryAfterMs);
  }
  return { body, status, logId: bodyLogId(body) ?? logId };
}

function statusError(
  step: string,
  status: number,
  logId: string | undefined,
  retryAfterMs: number | undefined,
): CozeError {
  const code = codeFromStatus(status) ?? "protocol";
  return new CozeError(code, safeMessage(code, step), { step, status, logId, retryAfterMs });
}
