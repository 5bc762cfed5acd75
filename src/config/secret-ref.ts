import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import {
  envVariable,
  fail,
  isReference,
  kindOf,
  type LoadContext,
  type Place,
  required,
} from "./fields.js";

/** Where a secret's text came from. */
export type SecretSource = "inline" | "env" | "file";

/** A secret reference resolved to its text. */
export interface ResolvedSecret {
  /** The text: inline, the variable's value, or the file's content (UTF-8, BOM removed). */
  text: string;
  /** Where it came from. */
  source: SecretSource;
  /** How messages name it: `the value`, `env:NAME` or `file:PATH` (as written). Not secret. */
  label: string;
}

/** Options of {@link resolveSecret}. */
export interface SecretOptions {
  /** Completes "must be …" in type errors, e.g. `a PEM private key, env:NAME or file:PATH`. */
  expected: string;
  /** False for non-secrets (a TLS certificate): an inline value does not make the file secret. */
  secret: boolean;
  /** False when the value came from a referenced file rather than the config text. */
  inConfigText: boolean;
}

// A secret or a config file is small; a reference to a device or a huge file must not hang or
// exhaust the loader.
const maxSecretBytes = 1 << 20;

/**
 * Resolves a value that may be given inline, as `env:NAME` or as `file:PATH` (relative to the
 * config file's directory). Inline secrets in the config text set `ctx.inlineSecret`.
 *
 * @throws ConfigError naming the field and the variable or path when the value is not a
 *   non-empty string, the variable is unset or empty, or the file is unreadable, empty or larger
 *   than 1 MiB. The message never holds the value.
 */
export async function resolveSecret(
  ctx: LoadContext,
  place: Place,
  value: unknown,
  options: SecretOptions,
): Promise<ResolvedSecret> {
  required(ctx, place, value, options.expected);
  if (typeof value !== "string") {
    const hint = typeof value === "number" ? " (write it in quotes)" : "";
    fail(ctx, place, `must be ${options.expected}, not ${kindOf(value)}${hint}`);
  }
  if (value.trim() === "") fail(ctx, place, `is empty; expected ${options.expected}`);
  if (!isReference(value)) {
    if (options.secret && options.inConfigText) ctx.inlineSecret = true;
    return { text: value, source: "inline", label: "the value" };
  }
  if (value.startsWith("env:")) {
    const name = value.slice("env:".length);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      fail(ctx, place, "env: must be followed by a variable name, e.g. env:COZE_PRIVATE_KEY");
    }
    const text = envVariable(ctx, name);
    if (text === undefined)
      fail(ctx, place, `environment variable ${name} is not set (env:${name})`);
    if (text.trim() === "") fail(ctx, place, `environment variable ${name} is empty (env:${name})`);
    return { text, source: "env", label: `env:${name}` };
  }
  const path = value.slice("file:".length);
  if (path.trim() === "") fail(ctx, place, "file: must be followed by a path, e.g. file:./key.pem");
  const full = resolve(ctx.baseDir, path);
  const shown = isAbsolute(path) ? path : `${path} (${full})`;
  let data: Buffer;
  try {
    data = (await readBounded(full, maxSecretBytes)).data;
  } catch (err) {
    fail(ctx, place, `cannot read ${shown}: ${describeFsError(err)}`, err);
  }
  if (data.length > maxSecretBytes) fail(ctx, place, `file ${shown} is larger than 1 MiB`);
  const text = data.toString("utf8").replace(/^\uFEFF/, "");
  if (text.trim() === "") fail(ctx, place, `file ${shown} is empty`);
  return { text, source: "file", label: `file:${path}` };
}

/** A file's first `maxBytes + 1` bytes (so a caller can tell it is too large) and its mode. */
export async function readBounded(
  path: string,
  maxBytes: number,
): Promise<{ data: Buffer; mode: number }> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, "r");
    const stat = await handle.stat();
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return { data: buffer.subarray(0, length), mode: stat.mode };
  } finally {
    await handle?.close();
  }
}

/** A short reason for an fs error: its errno name in words, never its message. */
export function describeFsError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case "ENOENT":
      return "no such file (ENOENT)";
    case "EACCES":
    case "EPERM":
      return `permission denied (${code})`;
    case "EISDIR":
      return "is a directory (EISDIR)";
    case "ENOTDIR":
      return "a parent is not a directory (ENOTDIR)";
    default:
      return typeof code === "string" ? `error ${code}` : "unreadable";
  }
}

/** The hint for an inline value that is no PEM: perhaps a path meant as `file:PATH`. */
export function fileHint(value: ResolvedSecret): string {
  return value.source === "inline" ? "; to read it from a file, write file:PATH" : "";
}

/** ` (from env:NAME)` or ` (from file:PATH)` for a referenced value; empty for an inline one. */
export function fromLabel(value: ResolvedSecret): string {
  return value.source === "inline" ? "" : ` (from ${value.label})`;
}
