import { constants, type Stats } from "node:fs";
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
 * A secret file readable by group or others (`mode & 0o077`) adds a warning naming it and its
 * mode, like a config file that holds secrets inline.
 *
 * @throws ConfigError naming the field and the variable or path when the value is not a
 *   non-empty string, the variable is unset or empty, or the file is unreadable, not a regular
 *   file (a FIFO would block the start, a device never ends), empty or larger than 1 MiB. The
 *   message never holds the value.
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
  let file: { data: Buffer; mode: number };
  try {
    file = await readBounded(full, maxSecretBytes, { regularOnly: true });
  } catch (err) {
    fail(ctx, place, `cannot read ${shown}: ${describeFsError(err)}`, err);
  }
  const { data, mode } = file;
  if (data.length > maxSecretBytes) fail(ctx, place, `file ${shown} is larger than 1 MiB`);
  const text = data.toString("utf8").replace(/^\uFEFF/, "");
  if (text.trim() === "") fail(ctx, place, `file ${shown} is empty`);
  // Windows has no such mode bits; its ACLs are another matter.
  if (options.secret && (mode & 0o077) !== 0 && process.platform !== "win32") {
    ctx.warnings.push(
      `${full}: holds a secret (${place.path}) and is readable by group or others (mode ${modeText(mode)}); chmod 600 it`,
    );
  }
  return { text, source: "file", label: `file:${path}` };
}

/** A file mode's permission bits as four octal digits, e.g. `0644`. */
export function modeText(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, "0");
}

/** The code of the error {@link readBounded} throws for a file that is not a regular file. */
const notRegular = "ERR_NOT_REGULAR_FILE";

/** What a file that is not a regular file is, in words. */
function fileKind(stat: Stats): string {
  if (stat.isDirectory()) return "a directory";
  if (stat.isFIFO()) return "a FIFO (named pipe)";
  if (stat.isCharacterDevice()) return "a character device";
  if (stat.isBlockDevice()) return "a block device";
  if (stat.isSocket()) return "a socket";
  return "not a file";
}

/**
 * A file's first `maxBytes + 1` bytes (so a caller can tell it is too large) and its mode. With
 * `regularOnly`, anything but a regular file is refused before a byte is read: it is opened
 * without blocking (a FIFO with no writer would block the open for ever) and fails with `code`
 * `ERR_NOT_REGULAR_FILE` and `fileKind` (`a FIFO (named pipe)`, …), which
 * {@link describeFsError} puts in words.
 */
export async function readBounded(
  path: string,
  maxBytes: number,
  options: { regularOnly?: boolean } = {},
): Promise<{ data: Buffer; mode: number }> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(
      path,
      options.regularOnly ? constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) : "r",
    );
    const stat = await handle.stat();
    if (options.regularOnly && !stat.isFile()) {
      throw Object.assign(new Error("not a regular file"), {
        code: notRegular,
        fileKind: fileKind(stat),
      });
    }
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
    case notRegular:
      return `is ${(err as { fileKind?: string }).fileKind ?? "not a file"}, not a regular file`;
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
