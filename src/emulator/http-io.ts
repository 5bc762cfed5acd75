import type { IncomingMessage, ServerResponse } from "node:http";
import type { FaultPlan } from "./faults.js";
import type { StatsRecorder } from "./stats.js";

/** One call as the handlers see it. */
export interface Ctx {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  /** Log id of this call: `X-Tt-Logid` header and `detail.logid` (§1.3, §7.2). */
  readonly logid: string;
  /** What the injected faults decided for this call. */
  readonly plan: FaultPlan;
  /** Aborted when the client goes away or the emulator closes. */
  readonly signal: AbortSignal;
  readonly stats: StatsRecorder;
}

/** A Coze business error, answered as `{code, msg, detail}` (HTTP 200 unless said otherwise). */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly msg: string,
    readonly httpStatus = 200,
  ) {
    super(msg);
    this.name = "ApiError";
  }
}

/** Request parameter error, code 4000 (§1.5). */
export function badRequest(msg: string): ApiError {
  return new ApiError(4000, `Request parameter error: ${msg}`);
}

/** Resource not found, code 4200 (§1.5; js maps it to `NotFoundError`). */
export function notFound(msg: string): ApiError {
  return new ApiError(4200, msg);
}

/**
 * Invalid conversation, code 4002: "wrong id or no permission" (cozedocs:coze_error_codes.md via
 * §16.5), also what another session gets for someone else's conversation (§12.2).
 */
export function conversationNotFound(id: string): ApiError {
  return new ApiError(4002, `conversation ${id} not found`);
}

/** Largest request body read: the documented request limit is 20 MB (§5.1). */
const MAX_BODY = 20 * 1024 * 1024;

/** Reads the whole request body; throws {@link ApiError} 4000 past 20 MB. */
export async function readBody(ctx: Ctx): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw badRequest("request body exceeds 20 MB");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Reads a JSON object body. An empty body reads as `{}` (js posts `/v3/chat/retrieve` without a
 * body, §4.4). Anything but an object is a 4000.
 */
export async function readJson(ctx: Ctx): Promise<Record<string, unknown>> {
  const text = (await readBody(ctx)).toString("utf8");
  if (text.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest("json fail");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badRequest("body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/** A query parameter; `""` counts as absent (§1.6, §7.6). */
export function queryParam(ctx: Ctx, name: string): string | undefined {
  const v = ctx.url.searchParams.get(name);
  return v === null || v === "" ? undefined : v;
}

/**
 * Sends a JSON body with `Content-Type: application/json` and `X-Tt-Logid` (§7.2), unless a
 * fault says otherwise: `reset` destroys the socket, `stall` never answers, `malformed` sends a
 * truncated body.
 */
export function sendJson(
  ctx: Ctx,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const { res, plan } = ctx;
  if (res.headersSent || res.destroyed) return;
  if (plan.resetAfter !== undefined) {
    destroySocket(res);
    return;
  }
  if (plan.stallAfter !== undefined) return;
  let text = encodeJson(body);
  if (plan.malformedAfter !== undefined) text = text.slice(0, Math.max(1, text.length >> 1));
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": String(Buffer.byteLength(text)),
    "X-Tt-Logid": ctx.logid,
    ...headers,
  });
  res.end(text);
}

/** `{code:0, msg:"", data, detail:{logid}}`, the common envelope (§1.3). */
export function sendData(ctx: Ctx, data: unknown): void {
  sendJson(ctx, 200, { code: 0, msg: "", data, detail: { logid: ctx.logid } });
}

/** `{code, msg, detail:{logid}}` with `httpStatus` (default 200, §4.5 "errors before the stream"). */
export function sendError(
  ctx: Ctx,
  code: number,
  msg: string,
  httpStatus = 200,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): void {
  sendJson(ctx, httpStatus, { code, msg, ...extra, detail: { logid: ctx.logid } }, headers);
}

/**
 * JSON text for the wire. U+2028/U+2029 are escaped too: `JSON.stringify` leaves them raw and
 * some line splitters (Python's `str.splitlines`) would cut an SSE `data:` line there (§4.5
 * "single-line JSON").
 */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/**
 * Cuts the connection: what was already written is flushed, then the socket closes with no end
 * to the HTTP response (no final chunk, no Content-Length body), so the client sees a connection
 * cut right after the last complete event. A TCP RST is not used: the peer's kernel may discard
 * unread data on RST, and the K events a `reset` fault promises would be lost.
 */
export function destroySocket(res: ServerResponse): void {
  const socket = res.socket;
  if (!socket) {
    res.destroy();
    return;
  }
  socket.end(() => socket.destroy());
}
