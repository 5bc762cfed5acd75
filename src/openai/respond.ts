import type { ServerResponse } from "node:http";
import { noteFailure, requestOf } from "../service/index.js";
import type { NodeResponse } from "./node-types.js";
import { errorJson, type OpenAiError } from "./openai-error.js";

/**
 * Writes a complete JSON response. Headers set earlier (CORS) are kept; `headers` add to them.
 * A response that already started, or whose client is gone, is left as it is.
 */
export function sendJsonText(
  res: NodeResponse,
  status: number,
  text: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  // One list for the head: headers set one by one cost Node more to keep and write.
  const head: string[] = [];
  for (const name in headers) head.push(name, headers[name] as string);
  head.push(
    "content-type",
    "application/json; charset=utf-8",
    "content-length",
    String(Buffer.byteLength(text)),
  );
  // Both Node servers take a list (@types/node types only HTTP/1.1's).
  (res as ServerResponse).writeHead(status, head);
  res.end(text);
}

/**
 * Answers with an OpenAI error body, its status and its headers (`Retry-After`, …), plus
 * `headers` (the channel that failed, when the call got that far). It becomes the request's
 * failure reason and field ({@link noteOpenAiFailure}).
 */
export function sendOpenAiError(
  res: NodeResponse,
  err: OpenAiError,
  headers?: Readonly<Record<string, string>>,
): void {
  noteOpenAiFailure(res, err);
  sendJsonText(
    res,
    err.status,
    errorJson(err),
    headers ? { ...err.headers, ...headers } : err.headers,
  );
}

/**
 * The failure reason of an OpenAI error, in the server's and the core's words so that a reason
 * means the same on every door (`invalid_argument` with the field, not the OpenAI `invalid_value`).
 */
function reasonOf(err: OpenAiError): string {
  switch (err.status) {
    case 400:
      return "invalid_argument";
    case 403:
      return "permission_denied";
    case 404:
      return err.body.code === "model_not_found" ? "unknown_model" : "not_found";
    case 405:
      return "method_not_allowed";
    case 409:
      return "canceled";
    case 413:
      return "too_large";
    case 429:
      return err.body.code === "too_many_streams" ? "too_many_streams" : "resource_exhausted";
    case 502:
      return "upstream_error";
    case 503:
      return "unavailable";
    case 504:
      return "deadline_exceeded";
    default:
      return err.status >= 500 ? "internal" : (err.body.code ?? err.body.type);
  }
}

/**
 * Notes `err` as the failure of `res`'s request, unless a deeper layer noted one first: its
 * reason ({@link reasonOf}) and `param`; `status` when the response can no longer carry it (a
 * stream that failed after its 200).
 */
export function noteOpenAiFailure(res: NodeResponse, err: OpenAiError, status?: number): void {
  noteFailure(requestOf(res.req), reasonOf(err), err.body.param ?? undefined, status);
}
