import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

/** A request as either Node HTTP server hands it over (HTTP/1.1, or HTTP/2 compatibility API). */
export type NodeRequest = IncomingMessage | Http2ServerRequest;

/** A response as either Node HTTP server hands it over. */
export type NodeResponse = ServerResponse | Http2ServerResponse;

/**
 * Writes `body` as a complete JSON response. Headers already set on `res` (CORS) are kept;
 * `headers` take precedence. When the response has already started, it is ended as it is,
 * because a status can no longer be sent. An HTTP/1 request whose body has not been read gets
 * `Connection: close`: after the answer Node would otherwise read and discard the rest of the
 * body, however long the client keeps sending it, to reuse the connection (issue 13).
 */
export function sendJson(
  res: NodeResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  closeIfBodyUnread(res);
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.setHeader("content-length", Buffer.byteLength(text));
  res.statusCode = status;
  res.end(text);
}

/**
 * Marks the response `Connection: close` when its HTTP/1 request has a body not received in
 * full: after an answer that did not read it, Node would read and discard the rest, however long
 * the client keeps sending, to reuse the connection (issue 13). Call before the headers go out.
 */
export function closeIfBodyUnread(res: NodeResponse): void {
  if (!res.headersSent && bodyUnread(res.req)) res.setHeader("connection", "close");
}

/** True for an HTTP/1 request that has a body (a length or chunks) not received in full yet. */
function bodyUnread(req: NodeRequest): boolean {
  if (req.httpVersionMajor !== 1 || req.complete) return false;
  const length = req.headers["content-length"];
  return (length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined;
}

const responseTag = Symbol("coze-gateway.response");
type Tagged = { [responseTag]?: NodeResponse };

/** Ties `res` to `req`, for code that is handed the request alone (Connect's context values). */
export function tieResponse(req: NodeRequest, res: NodeResponse): void {
  (req as Tagged)[responseTag] = res;
}

/** The response {@link tieResponse} tied to `req`, if any. */
export function responseOf(req: NodeRequest): NodeResponse | undefined {
  return (req as Tagged)[responseTag];
}

/** The path of a request target without its query string. */
export function requestPath(req: NodeRequest): string {
  const url = req.url ?? "/";
  const query = url.indexOf("?");
  return query === -1 ? url : url.slice(0, query);
}
