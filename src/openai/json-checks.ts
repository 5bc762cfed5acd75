import { badRequest, type OpenAiError } from "./openai-error.js";

/** A parsed JSON object. */
export type JsonRecord = Record<string, unknown>;

/** How OpenAI names the type of a value in its error messages: `a string`, `an integer`, … */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  switch (typeof v) {
    case "string":
      return "a string";
    case "boolean":
      return "a boolean";
    case "number":
      return Number.isInteger(v) ? "an integer" : "a decimal";
    case "object":
      return "an object";
    default:
      return typeof v;
  }
}

/** `Invalid type for 'param': expected …, but got … instead.` (OpenAI's wording). */
export function invalidType(param: string, expected: string, value: unknown): OpenAiError {
  return badRequest(
    param,
    `Invalid type for '${param}': expected ${expected}, but got ${describe(value)} instead.`,
    "invalid_type",
  );
}

/** `Missing required parameter: 'param'.` (OpenAI's wording). */
export function missing(param: string): OpenAiError {
  return badRequest(param, `Missing required parameter: '${param}'.`, "missing_required_parameter");
}

/** `Invalid value for 'param': 'x'. Supported values are: …` (OpenAI's wording, plus the field). */
export function unsupported(
  param: string,
  value: string,
  supported: readonly string[],
): OpenAiError {
  const list = supported.map((s) => `'${s}'`);
  const last = list.pop();
  const names = list.length > 0 ? `${list.join(", ")} and ${last}` : last;
  return badRequest(
    param,
    `Invalid value for '${param}': '${clip(value)}'. Supported values are: ${names}.`,
    "invalid_value",
  );
}

/** `Invalid 'param': …` for a value of the right type that is not acceptable. */
export function invalidValue(param: string, problem: string): OpenAiError {
  return badRequest(param, `Invalid '${param}': ${problem}`, "invalid_value");
}

/** True for a plain JSON object (not an array, not null). */
export function isRecord(v: unknown): v is JsonRecord {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A caller's value echoed in a message: never more than 40 characters of it. */
function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/** Checks an optional field: absent, `null`, or `check(value)` holds. */
export function optional(
  body: JsonRecord,
  field: string,
  param: string,
  expected: string,
  check: (v: unknown) => boolean,
): void {
  const v = body[field];
  if (v !== undefined && v !== null && !check(v)) throw invalidType(param, expected, v);
}

/** True for a JSON number. */
export const isNumber = (v: unknown): boolean => typeof v === "number";
/** True for an integral JSON number. */
export const isInteger = (v: unknown): boolean => Number.isInteger(v);
/** True for a string. */
export const isString = (v: unknown): boolean => typeof v === "string";
/** True for a boolean. */
export const isBoolean = (v: unknown): boolean => typeof v === "boolean";
