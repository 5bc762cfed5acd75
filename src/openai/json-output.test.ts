import { describe, expect, it } from "vitest";
import { chatCompletionFormat } from "./completion-format.js";
import {
  checkedFormat,
  checkJsonOutput,
  type JsonOutput,
  parseResponseFormat,
  parseTextFormat,
} from "./json-output.js";
import type { OpenAiError } from "./openai-error.js";

const strict = (schema: Record<string, unknown>) =>
  parseResponseFormat({
    type: "json_schema",
    json_schema: { name: "s", schema, strict: true },
  }) as JsonOutput;

function thrown(f: () => unknown): OpenAiError {
  try {
    f();
  } catch (err) {
    return err as OpenAiError;
  }
  throw new Error("did not throw");
}

describe("parseResponseFormat and parseTextFormat", () => {
  it("ask for nothing when absent, null or text", () => {
    for (const v of [undefined, null, { type: "text" }])
      expect(parseResponseFormat(v)).toBeUndefined();
    for (const v of [undefined, null, {}, { format: null }, { format: { type: "text" } }]) {
      expect(parseTextFormat(v)).toBeUndefined();
    }
  });

  it("read json_object and json_schema from both doors' shapes", () => {
    expect(parseResponseFormat({ type: "json_object" })).toEqual({
      type: "json_object",
      param: "response_format",
    });
    expect(parseTextFormat({ format: { type: "json_object" } })?.param).toBe("text.format");
    const s = parseTextFormat({
      format: { type: "json_schema", name: "n", schema: { type: "object" } },
    });
    expect(s).toMatchObject({ type: "json_schema", name: "n", strict: false, validate: undefined });
  });

  it("does not run a schema's regular expressions (a crafted one would block the gateway)", () => {
    const output = strict({ type: "string", pattern: "^(a+)+$" });
    const start = performance.now();
    expect(checkJsonOutput(output, JSON.stringify(`${"a".repeat(40)}!`))).toBeUndefined();
    expect(performance.now() - start).toBeLessThan(1_000);
  });

  it("refuses patternProperties, remote references and schemas that do not compile", () => {
    for (const schema of [
      { patternProperties: { "^a": {} } },
      { $ref: "https://example.com/schema.json" },
      { type: "objekt" },
      { properties: { a: { $ref: "#/definitions/missing" } } },
    ]) {
      const err = thrown(() => strict(schema));
      expect([err.status, err.body.param], JSON.stringify(schema)).toEqual([
        400,
        "response_format.json_schema.schema",
      ]);
    }
  });

  it("lets two requests use the same $id (nothing stays in the shared validator)", () => {
    const schema = { $id: "https://example.com/s", type: "object", required: ["a"] };
    const first = strict(structuredClone(schema));
    const second = strict(structuredClone(schema));
    expect(checkJsonOutput(first, '{"a":1}')).toBeUndefined();
    expect(checkJsonOutput(second, "{}")?.body.code).toBe("invalid_json_output");
  });
});

describe("checkJsonOutput", () => {
  const object = parseResponseFormat({ type: "json_object" }) as JsonOutput;

  it("passes a JSON object, with white space around it", () => {
    expect(checkJsonOutput(object, ' \n{"a":[1]}\n')).toBeUndefined();
  });

  it("fails text, a fenced block, an array or a string, without echoing the answer", () => {
    for (const answer of ["hi", '```json\n{"a":1}\n```', "[1]", '"s"']) {
      const err = checkJsonOutput(object, answer) as OpenAiError;
      expect([err.status, err.body.code, err.body.type]).toEqual([
        502,
        "invalid_json_output",
        "server_error",
      ]);
      expect(err.body.message).not.toContain(answer);
    }
  });

  it("validates a strict schema, naming the first error's place", () => {
    const output = strict({
      type: "object",
      properties: { items: { type: "array", items: { type: "integer" } } },
      required: ["items"],
      additionalProperties: false,
    });
    expect(checkJsonOutput(output, '{"items":[1,2]}')).toBeUndefined();
    expect(checkJsonOutput(output, '{"items":[1,"x"]}')?.body.message).toBe(
      'the answer does not validate against schema "s": at /items/1, must be integer',
    );
  });
});

describe("checkedFormat", () => {
  const meta = { id: "chatcmpl-1", model: "m", created: 1 };
  const object = parseResponseFormat({ type: "json_object" }) as JsonOutput;

  it("checks a finished stream at its end, not tool calls or an interrupt's question", () => {
    const fmt = checkedFormat(chatCompletionFormat(meta, false), object).stream();
    fmt.content('{"a"');
    fmt.content(":1}");
    expect(fmt.finish("stop", {}, undefined)).toContain("[DONE]");
    const bad = checkedFormat(chatCompletionFormat(meta, false), object).stream();
    bad.content("Which city?");
    expect(bad.finish("stop", { interrupt: { event_id: "e" } }, undefined)).toContain("[DONE]");
    expect(bad.finish("tool_calls", {}, undefined)).toContain("[DONE]");
    expect(thrown(() => bad.finish("stop", {}, undefined)).body.code).toBe("invalid_json_output");
  });
});
