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
  for (const name in headers) res.setHeader(name, headers[name] as string);
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.setHeader("content-length", Buffer.byteLength(text));
  res.statusCode = status;
  res.end(text);
}

/**
 * Answers with an OpenAI error body, its status and its headers (`Retry-After`, …), plus
 * `headers` (the channel that failed, when the call got that far). Its code and `param` become
 * the request's failure reason and field, unless the core noted a more precise one first.
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
 * Notes `err` as the failure of `res`'s request: its code (`invalid_value`, `model_not_found`, …,
 * else its type) and `param`; `status` when the response can no longer carry it (a stream that
 * failed after its 200).
 */
export function noteOpenAiFailure(res: NodeResponse, err: OpenAiError, status?: number): void {
  noteFailure(
    requestOf(res.req),
    err.body.code ?? err.body.type,
    err.body.param ?? undefined,
    status,
  );
}
