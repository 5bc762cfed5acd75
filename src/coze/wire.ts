import { CozeError, safeMessage } from "./errors.js";

/**
 * Small, forgiving readers for Coze JSON. Coze and its SDKs disagree on null versus absent and on
 * number versus string for some fields (coze-api.md §1.6, §9); these readers accept every variant
 * and never throw.
 */
export type Json = Record<string, unknown>;

/** `v` as an object, or `undefined`. */
export function obj(v: unknown): Json | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}

/** `v` as a string: strings pass, finite numbers are printed, anything else is `undefined`. */
export function str(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

/** `v` as a string id: like {@link str} but an empty string is `undefined`. */
export function id(v: unknown): string | undefined {
  const s = str(v);
  return s === "" ? undefined : s;
}

/** `v` as a number: numbers pass, numeric strings are parsed, anything else is `undefined`. */
export function num(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

/** `v` as a boolean, or `undefined`. */
export function bool(v: unknown): boolean | undefined {
  return typeof v === "boolean" ? v : undefined;
}

/** `v` as a map of strings (values that are not strings are dropped). */
export function strMap(v: unknown): Record<string, string> | undefined {
  const o = obj(v);
  if (!o) return undefined;
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(o)) {
    if (typeof val === "string") out[k] = val;
  }
  return out;
}

/** Parses a JSON object; throws a `protocol` {@link CozeError} for anything else. */
export function parseJsonObject(step: string, text: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new CozeError("protocol", safeMessage("protocol", step), { step, cause });
  }
  const o = obj(value);
  if (!o) throw new CozeError("protocol", safeMessage("protocol", step), { step });
  return o;
}

/** Token usage as Coze reports it. */
export interface Usage {
  tokenCount: number;
  inputCount: number;
  outputCount: number;
}

/** Reads a Coze `usage` object; `undefined` when absent. */
export function parseUsage(v: unknown): Usage | undefined {
  const u = obj(v);
  if (!u) return undefined;
  return {
    tokenCount: num(u.token_count) ?? 0,
    inputCount: num(u.input_count) ?? 0,
    outputCount: num(u.output_count) ?? 0,
  };
}

/** A copy of `o` without the keys whose value is `undefined`: the JSON body carries only what was given. */
export function compact<T extends Json>(o: T): T {
  // A copy rather than `delete`, which turns the object into a slow dictionary (issue #6).
  const out: Json = {};
  for (const k in o) {
    if (o[k] !== undefined) out[k] = o[k];
  }
  return out as T;
}

/** `text` parsed as a JSON object; `undefined` for anything else (never throws). */
export function tryParseObject(text: string | undefined): Json | undefined {
  if (text === undefined) return undefined;
  try {
    return obj(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/**
 * Reads a response body as UTF-8 text, at most `maxBytes`; `undefined` when it is larger (the
 * caller destroys the body). Errors of the body (a reset, a timeout) propagate.
 */
export async function readCapped(
  body: AsyncIterable<Uint8Array | string>,
  maxBytes: number,
): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf =
      typeof chunk === "string"
        ? Buffer.from(chunk)
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    size += buf.length;
    if (size > maxBytes) return undefined;
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString("utf8");
}
