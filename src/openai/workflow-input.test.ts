import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { parseChatCompletionRequest } from "./parse-request.js";
import { outputContent, workflowParameters } from "./workflow-input.js";

const content = (json: string) => {
  let value: unknown;
  try {
    value = fromJson(ValueSchema, JSON.parse(json));
  } catch {
    value = undefined;
  }
  return outputContent(json, value);
};

describe("workflow output as content", () => {
  it("gives the string of an object with one string field", () => {
    expect(content('{"output":"hello"}')).toBe("hello");
    expect(content('{"any_name":""}')).toBe("");
  });

  it("gives anything else as its exact JSON text, never re-quoted or broken", () => {
    for (const json of [
      '{"output":"a","n":1}',
      '{"output":42}',
      '{"output":{"nested":"x"}}',
      '"just a string"',
      "[1,2]",
      "{}",
      '{ "spaced" : [ 1 ] }',
    ]) {
      expect(content(json)).toBe(json);
    }
  });

  it("passes an output that is not JSON through as text", () => {
    expect(content("plain words")).toBe("plain words");
  });
});

describe("workflow parameters", () => {
  const req = (body: Record<string, unknown>) =>
    parseChatCompletionRequest(JSON.stringify({ model: "workflow:1", ...body }), undefined);

  it("puts the last user text under the route's input field unless parameters are given", () => {
    const messages = [
      { role: "user", content: "first" },
      { role: "assistant", content: "ok" },
      {
        role: "user",
        content: [
          { type: "text", text: "line 1" },
          { type: "text", text: "line 2" },
        ],
      },
      { role: "system", content: "s" },
    ];
    expect(workflowParameters(req({ messages }), "query")).toEqual({ query: "line 1\nline 2" });
    expect(workflowParameters(req({ messages, parameters: { a: [1] } }), "query")).toEqual({
      a: [1],
    });
  });
});
