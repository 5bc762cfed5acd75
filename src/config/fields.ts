import { ConfigError } from "./config-error.js";
import type { ConfigEnv } from "./gateway-config.js";

// Internal helpers of the loader: typed reads of untrusted values that fail with a ConfigError
// naming the field. No helper ever puts the value it rejects into a message: it may be a secret.

/** The state of one load, shared by every section reader. */
export interface LoadContext {
  /** The config file as given, or a label; the first part of every message. */
  readonly file: string;
  /** The directory `file:` references are relative to. */
  readonly baseDir: string;
  /** Where `env:` references and `COZE_GATEWAY_*` overrides are looked up. */
  readonly env: ConfigEnv;
  /** Warnings collected so far. */
  readonly warnings: string[];
  /**
   * Problems kept so far by {@link attempt}: the loader reads on past a bad field or entry and
   * reports every problem of the file together, then throws.
   */
  readonly errors: ConfigError[];
  /** Set once the config text itself holds a secret, for the file-mode warning. */
  inlineSecret: boolean;
}

/** A place in the config: the printed field path and the channel it lies in. */
export interface Place {
  /** `channels[cn-main].token.duration_seconds`; empty for the top level. */
  readonly path: string;
  /** The channel's name, when known. */
  readonly channel?: string | undefined;
}

/** The top level of the file. */
export const root: Place = { path: "" };

/** The place of `key` inside `place`. */
export function child(place: Place, key: string): Place {
  const label = key.length > 64 ? `${key.slice(0, 61)}...` : key;
  return { path: place.path === "" ? label : `${place.path}.${label}`, channel: place.channel };
}

/** The place of a list item, by name or index: `channels[cn-main]`, `channels[1]`. */
export function item(place: Place, label: string | number, channel?: string): Place {
  return { path: `${place.path}[${label}]`, channel: channel ?? place.channel };
}

/** Throws the ConfigError for `place`. */
export function fail(ctx: LoadContext, place: Place, problem: string, cause?: unknown): never {
  throw new ConfigError({
    file: ctx.file,
    field: place.path,
    problem,
    channel: place.channel,
    cause,
  });
}

/**
 * Runs `read` and returns what it returns; when it fails with a ConfigError, keeps the error in
 * `ctx.errors` and returns `fallback`, so the loader goes on to the next field or entry and
 * reports every problem of the file at once. The loader throws when any was kept, so a
 * fallback never reaches a config. Other errors pass through.
 */
export function attempt<T>(ctx: LoadContext, fallback: T, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    ctx.errors.push(err);
    return fallback;
  }
}

/** {@link attempt} for a reader that reads files (`file:` references). */
export async function attemptAsync<T>(
  ctx: LoadContext,
  fallback: T,
  read: () => Promise<T>,
): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    ctx.errors.push(err);
    return fallback;
  }
}

/**
 * Throws the problems kept since `ctx.errors` had `mark` entries, as one ConfigError (the first,
 * listing all), so a reader that read on past them still fails as a whole; does nothing when
 * none was kept.
 */
export function failIfKept(ctx: LoadContext, mark: number): void {
  if (ctx.errors.length > mark) throw ConfigError.of(ctx.errors.splice(mark));
}

/** How a value is described in a type error: its kind, never its content. */
export function kindOf(value: unknown): string {
  if (value === null || value === undefined) return "empty";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return "a string";
  if (typeof value === "number") return "a number";
  if (typeof value === "boolean") return "true/false";
  if (typeof value === "object") return "a mapping";
  return `a ${typeof value}`;
}

/** True for `null` and `undefined`: a key with no value counts as an absent key. */
export function absent(value: unknown): value is null | undefined {
  return value === null || value === undefined;
}

/** Fails for an absent required value: `is missing; expected …` or `is empty; expected …`. */
export function required(ctx: LoadContext, place: Place, value: unknown, expected: string): void {
  if (value === undefined) fail(ctx, place, `is missing; expected ${expected}`);
  if (value === null) fail(ctx, place, `is empty; expected ${expected}`);
}

/** `value` as a plain mapping, or a failure saying it must be `expected`. */
export function asMapping(
  ctx: LoadContext,
  place: Place,
  value: unknown,
  expected = "a mapping",
): Record<string, unknown> {
  required(ctx, place, value, expected);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(ctx, place, `must be ${expected}, not ${kindOf(value)}`);
  }
  return value as Record<string, unknown>;
}

/** An optional section: `{}` when absent, else a mapping with only `known` keys. */
export function section(
  ctx: LoadContext,
  place: Place,
  value: unknown,
  known: readonly string[],
): Record<string, unknown> {
  if (absent(value)) return {};
  const map = asMapping(ctx, place, value);
  onlyKnownKeys(ctx, place, map, known);
  return map;
}

/**
 * Keeps a problem for every key of `map` not in `known`, suggesting the closest known key; the
 * known keys are read on (an unknown key hides no other problem).
 */
export function onlyKnownKeys(
  ctx: LoadContext,
  place: Place,
  map: Record<string, unknown>,
  known: readonly string[],
): void {
  for (const key of Object.keys(map)) {
    if (!known.includes(key)) {
      attempt(ctx, undefined, () => fail(ctx, child(place, key), unknownKeyProblem(key, known)));
    }
  }
}

/** `is not a known field (did you mean port?); expected one of: host, port, …`. */
export function unknownKeyProblem(key: string, known: readonly string[]): string {
  const guess = closest(key, known);
  const hint = guess === undefined ? "" : ` (did you mean ${guess}?)`;
  return `is not a known field${hint}; expected one of: ${known.join(", ")}`;
}

// The known key a typo most likely meant: same letters ignoring case, `_` and `-`
// (`baseUrl` → `base_url`), else the same start, else within two edits.
function closest(key: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  const same = known.find((k) => norm(k) === norm(key));
  if (same !== undefined) return same;
  // A key without its unit or suffix: `duration` → `duration_seconds`, `input` → `input_field`.
  const stem = norm(key).length >= 4 ? known.find((k) => norm(k).startsWith(norm(key))) : undefined;
  if (stem !== undefined) return stem;
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(norm(key), norm(k));
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(
        (previous[j] ?? 0) + 1,
        (current[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + cost,
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** A list, or a failure saying it must be `expected`. */
export function asList(
  ctx: LoadContext,
  place: Place,
  value: unknown,
  expected: string,
): unknown[] {
  required(ctx, place, value, expected);
  if (!Array.isArray(value)) fail(ctx, place, `must be ${expected}, not ${kindOf(value)}`);
  return value;
}

/** Range and default of an integer field. */
export interface IntegerRule {
  min: number;
  max: number;
  fallback: number;
}

/** An integer in `[min, max]`, `fallback` when absent. */
export function integer(ctx: LoadContext, place: Place, value: unknown, rule: IntegerRule): number {
  if (absent(value)) return rule.fallback;
  const expected = `an integer from ${rule.min} to ${rule.max}`;
  if (typeof value !== "number") fail(ctx, place, `must be ${expected}, not ${kindOf(value)}`);
  if (!Number.isInteger(value) || value < rule.min || value > rule.max) {
    fail(ctx, place, `must be ${expected}`);
  }
  return value;
}

/** `true` or `false`, `fallback` when absent. */
export function flag(ctx: LoadContext, place: Place, value: unknown, fallback: boolean): boolean {
  if (absent(value)) return fallback;
  if (typeof value !== "boolean") fail(ctx, place, `must be true or false, not ${kindOf(value)}`);
  return value;
}

/** True for a string that asks to be read from elsewhere: `env:NAME` or `file:PATH`. */
export function isReference(value: string): boolean {
  return value.startsWith("env:") || value.startsWith("file:");
}

/**
 * A string that is not a reference (`env:`/`file:` are only read where secrets go), or
 * `undefined` when absent. `expected` completes "must be …".
 */
export function text(
  ctx: LoadContext,
  place: Place,
  value: unknown,
  expected: string,
): string | undefined {
  if (absent(value)) return undefined;
  if (typeof value !== "string") {
    const hint = typeof value === "number" ? " (write it in quotes)" : "";
    fail(ctx, place, `must be ${expected}, not ${kindOf(value)}${hint}`);
  }
  if (isReference(value)) {
    fail(ctx, place, "cannot be an env: or file: reference; write the value itself");
  }
  return value;
}

/** A required non-empty string without whitespace (an app id, a key id). */
export function token(ctx: LoadContext, place: Place, value: unknown, expected: string): string {
  required(ctx, place, value, expected);
  const s = text(ctx, place, value, expected) ?? "";
  if (s === "" || /\s/.test(s)) fail(ctx, place, `must be ${expected}`);
  return s;
}

const digitsRule = 'a string of digits in quotes, e.g. "7390000000000000001"';

/**
 * A Coze id: a string of digits, `undefined` when absent or `""` (the old settings JSON left
 * unused ids empty). Numbers are refused: a 19-digit id does not survive a YAML or JSON number.
 */
export function digitsId(ctx: LoadContext, place: Place, value: unknown): string | undefined {
  if (typeof value === "number") {
    fail(ctx, place, `must be ${digitsRule}; an unquoted number loses digits`);
  }
  const s = text(ctx, place, value, digitsRule);
  if (s === undefined || s === "") return undefined;
  if (!/^[0-9]{1,32}$/.test(s)) fail(ctx, place, `must be ${digitsRule}`);
  return s;
}

/** A required Coze id; see {@link digitsId}. */
export function requiredDigitsId(ctx: LoadContext, place: Place, value: unknown): string {
  required(ctx, place, value, digitsRule);
  const id = digitsId(ctx, place, value);
  if (id === undefined) fail(ctx, place, `is empty; expected ${digitsRule}`);
  return id;
}

/**
 * The environment variable `name`, or `undefined` when unset. Own properties only: `env:toString`
 * must not find Object.prototype.toString.
 */
export function envVariable(ctx: LoadContext, name: string): string | undefined {
  const value = Object.hasOwn(ctx.env, name) ? ctx.env[name] : undefined;
  return typeof value === "string" ? value : undefined;
}
