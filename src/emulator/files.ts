import {
  ApiError,
  badRequest,
  type Ctx,
  notFound,
  queryParam,
  readBody,
  sendData,
} from "./http-io.js";
import { newId } from "./ids.js";
import { type EmulatorState, remember } from "./state.js";

/** An uploaded file: only its metadata is kept, the bytes are dropped. */
export interface StoredFile {
  id: string;
  bytes: number;
  createdAt: number;
  fileName: string;
}

/** The File object of `/v1/files/upload` and `/v1/files/retrieve` (js `FileObject`). */
function fileWire(file: StoredFile): Record<string, unknown> {
  return { id: file.id, bytes: file.bytes, created_at: file.createdAt, file_name: file.fileName };
}

/**
 * `POST /v1/files/upload`, multipart field `file` (js posts `toFormData({file})`). Answers
 * `data {id, bytes, created_at, file_name}`. Errors use the upload codes of the chat-sdk table
 * (§1.5): 4300 empty file, 4301 more than one file; no `file` part or no multipart body is 4000.
 */
export async function handleUpload(state: EmulatorState, ctx: Ctx): Promise<void> {
  const type = ctx.req.headers["content-type"] ?? "";
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type);
  if (!type.toLowerCase().startsWith("multipart/form-data") || !boundary) {
    throw badRequest("the body must be multipart/form-data");
  }
  const body = await readBody(ctx);
  const files = parseMultipart(body, boundary[1] ?? boundary[2] ?? "").filter(
    (part) => part.name === "file",
  );
  if (files.length === 0) throw badRequest("the multipart field `file` is required");
  if (files.length > 1) throw new ApiError(4301, "Only one file can be uploaded at a time");
  const [part] = files as [MultipartPart];
  if (part.data.length === 0) throw new ApiError(4300, "The file to be uploaded is empty");
  const file: StoredFile = {
    id: newId(),
    bytes: part.data.length,
    createdAt: Math.floor(state.now() / 1000),
    fileName: part.filename ?? "file",
  };
  remember(state.files, file.id, file);
  sendData(ctx, fileWire(file));
}

/** `GET /v1/files/retrieve?file_id=` (js `files.retrieve`); unknown id is 4200. */
export function handleRetrieveFile(state: EmulatorState, ctx: Ctx): void {
  const id = queryParam(ctx, "file_id");
  const file = id === undefined ? undefined : state.files.get(id);
  if (!file) throw notFound("file not found");
  sendData(ctx, fileWire(file));
}

/** One part of a multipart/form-data body. */
export interface MultipartPart {
  name?: string;
  filename?: string;
  data: Buffer;
}

/** Splits a multipart/form-data body (RFC 7578) into parts; tolerant of a missing epilogue. */
export function parseMultipart(body: Buffer, boundary: string): MultipartPart[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: MultipartPart[] = [];
  let start = body.indexOf(delimiter);
  while (start !== -1) {
    const afterDelimiter = start + delimiter.length;
    if (body.subarray(afterDelimiter, afterDelimiter + 2).toString() === "--") break;
    const headerStart = afterDelimiter + 2; // skip CRLF
    const headerEnd = body.indexOf("\r\n\r\n", headerStart);
    if (headerEnd === -1) break;
    const next = body.indexOf(delimiter, headerEnd + 4);
    if (next === -1) break;
    const headers = body.subarray(headerStart, headerEnd).toString("utf8");
    const disposition = /content-disposition:([^\r\n]*)/i.exec(headers)?.[1] ?? "";
    const part: MultipartPart = { data: body.subarray(headerEnd + 4, next - 2) };
    const name = /\bname="([^"]*)"/i.exec(disposition)?.[1];
    const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1];
    if (name !== undefined) part.name = name;
    if (filename !== undefined) part.filename = filename;
    parts.push(part);
    start = next;
  }
  return parts;
}
