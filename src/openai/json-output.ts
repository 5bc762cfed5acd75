import { Ajv, type ValidateFunction } from "ajv";
import type { AnswerFormat, StreamFormat } from "./answer-format.js";
import type { CompletionExtras } from "./completion-format.js";
import {
  invalidType,
  invalidValue,
  isBoolean,
  isRecord,
  isString,
  type JsonRecord,
  missing,
  optional,
  unsupported,
} from "./json-checks.js";
import { OpenAiError } from "./openai-error.js";

/**
 * A JSON answer a request asks for (issue 16): `response_format` of Chat Completions, or
 * `text.format` of the Responses API. `type: "text"` (the default) asks for nothing.
 */
export type JsonOutput = { /** The request field that asked. */ param: string } & (
  | { type: "json_object" }
  | {
      type: "json_schema";
      name: string;
      description: string | undefined;
      schema: JsonRecord | undefined;
      /** Whether the answer must validate against `schema`; else it only has to be JSON. */
      strict: boolean;
      /** `schema` compiled, when `strict`. */
      validate: ValidateFunction | undefined;
    }
);

/** The largest `schema` taken, as JSON text: it is sent to the bot with every turn. */
export const maxSchemaBytes = 32 * 1024;
const namePattern = /^[A-Za-z0-9_-]{1,64}$/;

// One validator for every request: compiling on a fresh instance costs more than the rest of a
// turn. Each schema is removed from its cache once compiled, so requests share nothing.
// `pattern` is not checked (a caller's regular expression run on the gateway could keep it busy
// for minutes on a crafted answer); formats are not checked either.
const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: false });
ajv.removeKeyword("pattern");
ajv.addKeyword({ keyword: "pattern", schemaType: "string" });

/**
 * Reads Chat Completions' `response_format`: absent, `null` or `{type: "text"}` ask for
 * nothing; `{type: "json_object"}`; `{type: "json_schema", json_schema: {name, description?,
 * schema?, strict?}}`.
 *
 * @throws OpenAiError 400 naming the field: a wrong type, an unknown `type`, a missing or bad
 *   `name`, a schema over {@link maxSchemaBytes}, or one that does not compile (with `strict`),
 *   that uses `patternProperties`, or refers to anything outside itself.
 */
export function parseResponseFormat(value: unknown): JsonOutput | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw invalidType("response_format", "an object", value);
  const type = formatType(value, "response_format");
  if (type === "text") return undefined;
  if (type === "json_object") return { type, param: "response_format" };
  const spec = value.json_schema;
  if (spec === undefined || spec === null) throw missing("response_format.json_schema");
  if (!isRecord(spec)) throw invalidType("response_format.json_schema", "an object", spec);
  return schemaOutput(spec, "response_format.json_schema", "response_format");
}

/**
 * Reads the Responses API's `text.format`: `{type: "text"}`, `{type: "json_object"}`, or
 * `{type: "json_schema", name, description?, schema?, strict?}` (the fields at the format's top
 * level, as OpenAI has them there).
 *
 * @throws OpenAiError 400 naming the field, as {@link parseResponseFormat}.
 */
export function parseTextFormat(text: unknown): JsonOutput | undefined {
  if (!isRecord(text)) return undefined;
  const format = text.format;
  if (format === undefined || format === null) return undefined;
  if (!isRecord(format)) throw invalidType("text.format", "an object", format);
  const type = formatType(format, "text.format");
  if (type === "text") return undefined;
  if (type === "json_object") return { type, param: "text.format" };
  return schemaOutput(format, "text.format", "text.format");
}

const formatTypes = ["text", "json_object", "json_schema"] as const;

function formatType(format: JsonRecord, at: string): (typeof formatTypes)[number] {
  const type = format.type;
  if (type === undefined || type === null) throw missing(`${at}.type`);
  if (typeof type !== "string") throw invalidType(`${at}.type`, "a string", type);
  if (!(formatTypes as readonly string[]).includes(type)) {
    throw unsupported(`${at}.type`, type, formatTypes);
  }
  return type as (typeof formatTypes)[number];
}

function schemaOutput(spec: JsonRecord, at: string, param: string): JsonOutput {
  const name = spec.name;
  if (name === undefined || name === null) throw missing(`${at}.name`);
  if (typeof name !== "string") throw invalidType(`${at}.name`, "a string", name);
  if (!namePattern.test(name)) {
    throw invalidValue(`${at}.name`, "1 to 64 characters among a-z, A-Z, 0-9, _ and -.");
  }
  optional(spec, "description", `${at}.description`, "a string", isString);
  optional(spec, "strict", `${at}.strict`, "a boolean", isBoolean);
  optional(spec, "schema", `${at}.schema`, "an object", isRecord);
  const schema = (spec.schema as JsonRecord | null | undefined) ?? undefined;
  const strict = spec.strict === true;
  if (schema !== undefined && Buffer.byteLength(JSON.stringify(schema)) > maxSchemaBytes) {
    throw invalidValue(`${at}.schema`, `larger than ${maxSchemaBytes} bytes as JSON.`);
  }
  return {
    type: "json_schema",
    param,
    name,
    description: (spec.description as string | null | undefined) ?? undefined,
    schema,
    strict,
    validate: strict && schema !== undefined ? compile(schema, `${at}.schema`) : undefined,
  };
}

function compile(schema: JsonRecord, at: string): ValidateFunction {
  if (JSON.stringify(schema).includes('"patternProperties"')) {
    throw invalidValue(at, "patternProperties is not supported.");
  }
  try {
    return ajv.compile(schema);
  } catch (err) {
    const why = err instanceof Error ? err.message.slice(0, 200) : "it does not compile";
    throw invalidValue(at, `not a JSON Schema the gateway can check: ${why}`);
  } finally {
    ajv.removeSchema(schema);
  }
}

/**
 * The instruction a bot gets for `output` (issue 16), as a system message: Coze bots take no
 * `response_format`, so they are told in words, and the answer is checked after.
 */
export function instructionOf(output: JsonOutput): string {
  const bare = "no text before or after it, no Markdown code fence";
  if (output.type === "json_object") {
    return `Answer with one JSON object and nothing else (${bare}).`;
  }
  const about = output.description ? ` (${output.description})` : "";
  const schema =
    output.schema === undefined
      ? ""
      : ` It must validate against this JSON Schema, named "${output.name}"${about}: ${JSON.stringify(output.schema)}`;
  return `Answer with one JSON value and nothing else (${bare}).${schema}`;
}

/**
 * The error for an answer that is not the JSON `output` asks for, or `undefined` when it is:
 * `json_object` must parse as a JSON object; `json_schema` must parse as JSON and, with
 * `strict`, validate against the schema. 502 `invalid_json_output`: the bot (or workflow) did
 * not produce what was asked, which is an upstream failure, never a success. The message names
 * the first schema error's place, never the answer's text.
 */
export function checkJsonOutput(output: JsonOutput, content: string): OpenAiError | undefined {
  const param = output.param;
  let value: unknown;
  try {
    value = JSON.parse(content);
  } catch {
    return invalidOutput(`the answer is not JSON, as ${param} asks`);
  }
  if (output.type === "json_object") {
    return isRecord(value)
      ? undefined
      : invalidOutput(`the answer is not a JSON object, as ${param} asks`);
  }
  if (output.validate === undefined || output.validate(value)) return undefined;
  const first = output.validate.errors?.[0];
  const where = first ? `: at ${first.instancePath || "/"}, ${first.message ?? "invalid"}` : "";
  return invalidOutput(
    `the answer does not validate against schema "${output.name}"${where}`.slice(0, 300),
  );
}

function invalidOutput(message: string): OpenAiError {
  return new OpenAiError(502, {
    message,
    type: "server_error",
    code: "invalid_json_output",
    param: null,
  });
}

/** Whether an answer is one `response_format` applies to: a final answer, not a question. */
function answers(reason: string, extras: CompletionExtras): boolean {
  return reason === "stop" && extras.interrupt === undefined;
}

/**
 * `format` checking every final answer against `output` (issue 16): a non-stream answer that
 * fails is a 502 `invalid_json_output` instead; a stream is written as it comes, and the check
 * runs at its end: a failure ends it with the door's error events (`data: {"error": …}` and no
 * `[DONE]`, or `response.failed`), never with a normal finish. Tool calls and a workflow's
 * interrupt (a question) are not checked.
 */
export function checkedFormat(format: AnswerFormat, output: JsonOutput): AnswerFormat {
  return {
    unary(message, finish, usage, extras, ids) {
      if (answers(finish, extras) && message.content !== null) {
        const err = checkJsonOutput(output, message.content);
        if (err) throw err;
      }
      return format.unary(message, finish, usage, extras, ids);
    },
    stream() {
      const inner = format.stream();
      let text = "";
      const checked: StreamFormat = {
        ...inner,
        content(t) {
          text += t;
          return inner.content(t);
        },
        delta(c, r) {
          text += c;
          return inner.delta(c, r);
        },
        finish(reason, extras, usage) {
          if (answers(reason, extras)) {
            const err = checkJsonOutput(output, text);
            if (err) throw err;
          }
          return inner.finish(reason, extras, usage);
        },
      };
      return checked;
    },
  };
}
