import { describe, expect, it } from "vitest";
import { invalidValue } from "./json-checks.js";
import { OpenAiError } from "./openai-error.js";
import { parseResponseRequest } from "./parse-response-request.js";
import { encodeResponseId, itemIdOf } from "./response-id.js";
import { toTurnRequest } from "./response-input.js";
import { encodeToolCallId } from "./tool-call-id.js";

const parse = (body: Record<string, unknown>) =>
  parseResponseRequest(JSON.stringify({ model: "m", ...body }), undefined);
const turn = (body: Record<string, unknown>, workflow = false) =>
  toTurnRequest(parse(body), workflow);
const paramOf = (body: Record<string, unknown>, workflow = false) => {
  try {
    turn(body, workflow);
  } catch (e) {
    if (e instanceof OpenAiError) return [e.status, e.body.param];
    throw e;
  }
  return "accepted";
};
const conversation = { conversationId: "111.tag", chatId: "222.tag" };

describe("toTurnRequest", () => {
  it("maps instructions and messages part for part, dropping function calls and reasoning", () => {
    const { request } = turn({
      instructions: "rules",
      input: [
        {
          role: "user",
          content: [
            { type: "input_text", text: "a" },
            { type: "input_image", image_url: "https://x/y.png" },
          ],
        },
        { type: "reasoning", summary: [] },
        { type: "function_call", call_id: "c", name: "f", arguments: "{}" },
        { role: "assistant", content: [{ type: "output_text", text: "b" }] },
        { role: "user", content: [{ type: "input_image", file_id: "7400" }] },
      ],
    });
    expect(request.messages).toEqual([
      { role: "system", content: "rules" },
      {
        role: "user",
        content: [
          { type: "text", text: "a" },
          { type: "image_url", image_url: { url: "https://x/y.png" } },
        ],
      },
      { role: "assistant", content: [{ type: "text", text: "b" }] },
      { role: "user", content: [{ type: "image_file", file_id: "7400" }] },
    ]);
    expect([request.conversationId, request.sendFrom]).toEqual([undefined, undefined]);
  });

  it("continues previous_response_id's conversation, sending all of the input", () => {
    const { request } = turn({ previous_response_id: encodeResponseId(conversation), input: "x" });
    expect([request.conversationId, request.sendFrom]).toEqual(["111.tag", 0]);
  });

  it("continues the conversation of the last item reference, sending what follows it", () => {
    const id = encodeResponseId(conversation);
    const { request } = turn({
      input: [
        { role: "user", content: "old" },
        { type: "item_reference", id: itemIdOf("msg", id, 0) },
        { role: "user", content: "new" },
      ],
    });
    expect([request.conversationId, request.sendFrom]).toEqual(["111.tag", 1]);
  });

  it("turns trailing function_call_output items into tool messages", () => {
    const call = encodeToolCallId({ ...conversation, toolCallId: "t" });
    const { request } = turn({
      input: [
        { type: "function_call_output", call_id: call, output: "one" },
        {
          type: "function_call_output",
          call_id: call,
          output: [{ type: "input_text", text: "two" }],
        },
      ],
    });
    expect(request.messages).toEqual([
      { role: "tool", tool_call_id: call, content: "one" },
      { role: "tool", tool_call_id: call, content: [{ type: "text", text: "two" }] },
    ]);
  });

  it("refuses ids it did not hand out and workflows' conversations", () => {
    expect(paramOf({ previous_response_id: "resp_nope", input: "x" })).toEqual([
      404,
      "previous_response_id",
    ]);
    expect(paramOf({ input: [{ type: "item_reference", id: "msg_nope" }] })).toEqual([
      404,
      "input[0].id",
    ]);
    // A workflow reads the last user text: references are skipped, previous_response_id refused.
    expect(paramOf({ input: [{ id: "msg_nope" }, { role: "user", content: "x" }] }, true)).toBe(
      "accepted",
    );
    expect(
      paramOf({ previous_response_id: encodeResponseId(conversation), input: "x" }, true),
    ).toEqual([400, "previous_response_id"]);
    const workflowResponse = encodeResponseId({ conversationId: "", chatId: "" });
    expect(paramOf({ previous_response_id: workflowResponse, input: "x" })).toEqual([
      400,
      "previous_response_id",
    ]);
    const other = encodeToolCallId({ conversationId: "9.t", chatId: "8.t", toolCallId: "t" });
    expect(
      paramOf({
        previous_response_id: encodeResponseId(conversation),
        input: [{ type: "function_call_output", call_id: other, output: "o" }],
      }),
    ).toEqual([400, "input[0].call_id"]);
  });

  it("renames the chat door's fields to the input items they came from", () => {
    const { rename } = turn({
      instructions: "rules",
      input: [
        { role: "user", content: [{ type: "input_image", image_url: "x" }] },
        { type: "function_call", call_id: "c", name: "f", arguments: "{}" },
        { type: "function_call_output", call_id: "c", output: "o" },
      ],
    });
    const renamed = (param: string) => {
      const err = rename(invalidValue(param, "bad."));
      return [err.body.param, err.body.message];
    };
    expect(renamed("messages[1].content[0].image_url.url")).toEqual([
      "input[0].content[0].image_url",
      "Invalid 'input[0].content[0].image_url': bad.",
    ]);
    expect(renamed("messages[2].tool_call_id")[0]).toBe("input[2].call_id");
    expect(renamed("messages[0]")[0]).toBe("instructions");
    expect(renamed("messages")[0]).toBe("input");
    const notFound = rename(
      new OpenAiError(404, {
        message: "conversation_id: no conversation with this id",
        type: "invalid_request_error",
        code: "not_found",
        param: "conversation_id",
      }),
    );
    expect([notFound.body.param, notFound.body.message]).toEqual([
      "input[2].call_id",
      "input[2].call_id: no tool call with this id",
    ]);
  });
});
