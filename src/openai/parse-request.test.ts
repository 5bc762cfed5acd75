import { describe, expect, it } from "vitest";
import { OpenAiError } from "./openai-error.js";
import { parseChatCompletionRequest } from "./parse-request.js";

const parse = (body: unknown, header?: string) =>
  parseChatCompletionRequest(JSON.stringify(body), header);
const paramOf = (body: unknown) => {
  try {
    parse(body);
  } catch (e) {
    if (e instanceof OpenAiError) return [e.status, e.body.param, e.body.code];
    throw e;
  }
  return "accepted";
};
const messages = [{ role: "user", content: "hi" }];

describe("parseChatCompletionRequest", () => {
  it("reads the OpenAI fields and the extension fields", () => {
    const r = parse({
      model: "m",
      messages,
      stream: true,
      stream_options: { include_usage: true },
      user: "u1",
      conversation_id: "123",
      parameters: { a: 1 },
      event_id: "e/1",
      interrupt_type: 2,
    });
    expect(r).toMatchObject({
      model: "m",
      stream: true,
      includeUsage: true,
      user: "u1",
      conversationId: "123",
      parameters: { a: 1 },
      resume: { eventId: "e/1", interruptType: 2 },
    });
  });

  it("accepts and ignores sampling parameters, tools and unknown fields", () => {
    const r = parse({
      model: "m",
      messages,
      temperature: 0.2,
      top_p: 1,
      max_tokens: 10,
      stop: ["x"],
      seed: 3,
      n: 1,
      tools: [{ type: "function", function: { name: "f" } }],
      tool_choice: "auto",
      response_format: { type: "text" },
      something_new: true,
    });
    expect(r.stream).toBe(false);
    expect(r.includeUsage).toBe(false);
  });

  it("takes the conversation from the header when the body has none; the body wins", () => {
    expect(parse({ model: "m", messages }, "77").conversationId).toBe("77");
    expect(parse({ model: "m", messages, conversation_id: "88" }, "77").conversationId).toBe("88");
  });

  it("treats developer messages and assistant messages without content as valid", () => {
    expect(
      paramOf({
        model: "m",
        messages: [
          { role: "developer", content: [{ type: "text", text: "d" }] },
          { role: "assistant", tool_calls: [] },
          { role: "assistant", content: [{ type: "refusal", refusal: "no" }] },
          { role: "user", content: "q" },
        ],
      }),
    ).toBe("accepted");
  });

  it("names the field of every kind of bad input with a 400", () => {
    expect(paramOf({ model: "m", messages, n: 3 })).toEqual([400, "n", "invalid_value"]);
    expect(
      paramOf({ model: "m", messages: [{ role: "user", content: [{ type: "text", text: 1 }] }] }),
    ).toEqual([400, "messages[0].content[0].text", "invalid_type"]);
    expect(paramOf({ messages })).toEqual([400, "model", "missing_required_parameter"]);
    expect(paramOf({ model: "m", messages, seed: "1" })).toEqual([400, "seed", "invalid_type"]);
    expect(() => parseChatCompletionRequest("nope", undefined)).toThrow(OpenAiError);
  });
});
