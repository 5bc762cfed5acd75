import { describe, expect, it } from "vitest";
import { OpenAiError } from "./openai-error.js";
import { parseResponseRequest } from "./parse-response-request.js";

const parse = (body: Record<string, unknown>, header?: string) =>
  parseResponseRequest(JSON.stringify({ model: "m", input: "hi", ...body }), header);
const paramOf = (body: Record<string, unknown>) => {
  try {
    parse(body);
  } catch (e) {
    if (e instanceof OpenAiError) return [e.status, e.body.param];
    throw e;
  }
  return "accepted";
};

describe("parseResponseRequest", () => {
  it("reads a string input as one user message and echoes OpenAI's defaults", () => {
    const r = parse({});
    expect(r.input).toEqual([{ type: "message", role: "user", content: "hi" }]);
    expect(r.inputIsText).toBe(true);
    expect(r.echo).toEqual({
      instructions: null,
      max_output_tokens: null,
      max_tool_calls: null,
      metadata: {},
      parallel_tool_calls: true,
      previous_response_id: null,
      reasoning: { effort: null, summary: null },
      store: false,
      temperature: null,
      text: { format: { type: "text" } },
      tool_choice: "auto",
      tools: [],
      top_p: null,
      truncation: "disabled",
      user: null,
    });
  });

  it("accepts and echoes the ignored parameters, and reads the extension fields", () => {
    const r = parse(
      {
        stream: true,
        instructions: "rules",
        user: "alice",
        temperature: 0.5,
        top_p: 1,
        max_output_tokens: 10,
        tool_choice: { type: "function", name: "f" },
        tools: [{ type: "function", name: "f", parameters: {} }, { type: "web_search" }],
        reasoning: { effort: "low" },
        text: { format: { type: "json_object" } },
        include: ["reasoning.encrypted_content"],
        store: true,
        parameters: { a: 1 },
        event_id: "e",
        interrupt_type: 2,
      },
      "123",
    );
    expect(r).toMatchObject({
      stream: true,
      instructions: "rules",
      user: "alice",
      conversationId: "123",
      parameters: { a: 1 },
      resume: { eventId: "e", interruptType: 2 },
    });
    expect(r.echo).toMatchObject({ temperature: 0.5, max_output_tokens: 10, store: false });
  });

  it("names the field of a bad value", () => {
    expect(paramOf({ input: undefined })).toEqual([400, "input"]);
    expect(paramOf({ input: 3 })).toEqual([400, "input"]);
    expect(paramOf({ input: [{ type: "web_search_call" }] })).toEqual([400, "input[0].type"]);
    expect(paramOf({ input: [{ role: "user" }] })).toEqual([400, "input[0].content"]);
    expect(paramOf({ input: [{ type: "function_call_output", output: "o" }] })).toEqual([
      400,
      "input[0].call_id",
    ]);
    expect(paramOf({ input: [{ role: "user", content: [{ type: "input_image" }] }] })).toEqual([
      400,
      "input[0].content[0].image_url",
    ]);
    expect(
      paramOf({ input: [{ role: "system", content: [{ type: "input_image", image_url: "x" }] }] }),
    ).toEqual([400, "input[0].content[0].type"]);
    expect(paramOf({ max_output_tokens: 1.5 })).toEqual([400, "max_output_tokens"]);
    expect(paramOf({ tools: [1] })).toEqual([400, "tools[0]"]);
    expect(paramOf({ tool_choice: 1 })).toEqual([400, "tool_choice"]);
    expect(paramOf({ metadata: { k: 1 } })).toEqual([400, "metadata.k"]);
    expect(
      paramOf({ metadata: Object.fromEntries([...Array(17)].map((_, i) => [`k${i}`, ""])) }),
    ).toEqual([400, "metadata"]);
    expect(paramOf({ conversation_id: "nope" })).toEqual([400, "conversation_id"]);
  });

  it("refuses what needs stored state: background, conversation, prompt, two conversations", () => {
    expect(paramOf({ background: true })).toEqual([400, "background"]);
    expect(paramOf({ background: false })).toBe("accepted");
    expect(paramOf({ conversation: "conv_1" })).toEqual([400, "conversation"]);
    expect(paramOf({ prompt: { id: "pmpt_1" } })).toEqual([400, "prompt"]);
    expect(paramOf({ previous_response_id: "resp_x", conversation_id: "123" })).toEqual([
      400,
      "conversation_id",
    ]);
  });
});
