import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type CompletionMessage,
  completionJson,
  createChunkFormat,
  type OpenAiUsage,
} from "./completion-format.js";

const meta = fc.record({
  id: fc.string(),
  model: fc.string({ unit: "grapheme" }),
  created: fc.integer({ min: 0, max: 2 ** 33 }),
});
const message: fc.Arbitrary<CompletionMessage> = fc.record(
  {
    content: fc.option(fc.string({ unit: "binary" }), { nil: null }),
    reasoning_content: fc.string({ unit: "binary" }),
    tool_calls: fc.array(
      fc.record({
        id: fc.string(),
        type: fc.constant("function" as const),
        function: fc.record({ name: fc.string(), arguments: fc.json() }),
      }),
    ),
  },
  { requiredKeys: ["content"] },
);
const usage: fc.Arbitrary<OpenAiUsage | undefined> = fc.option(
  fc.record({ prompt_tokens: fc.nat(), completion_tokens: fc.nat(), total_tokens: fc.nat() }),
  { nil: undefined },
);
const extras = fc.dictionary(
  fc.constantFrom("conversation_id", "execute_id", "debug_url", "usage_note"),
  fc.option(fc.oneof(fc.string({ unit: "binary" }), fc.integer(), fc.jsonValue()), {
    nil: undefined,
  }),
);

describe("completion JSON", () => {
  it("writes the chat.completion object, extension fields at its top level (fast-check)", () => {
    fc.assert(
      fc.property(
        meta,
        message,
        fc.constantFrom("stop" as const, "tool_calls" as const),
        usage,
        extras,
        (m, msg, finish, u, more) => {
          const object: Record<string, unknown> = {
            id: m.id,
            object: "chat.completion",
            created: m.created,
            model: m.model,
            choices: [
              {
                index: 0,
                message: {
                  role: "assistant",
                  refusal: null,
                  content: msg.content,
                  reasoning_content: msg.reasoning_content,
                  tool_calls: msg.tool_calls,
                },
                logprobs: null,
                finish_reason: finish,
              },
            ],
            usage: u ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
            ...more,
          };
          expect(completionJson(m, msg, finish, u, more)).toBe(JSON.stringify(object));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("writes a finish chunk that parses, with its extension fields or without any", () => {
    fc.assert(
      fc.property(meta, extras, (m, more) => {
        const chunk = createChunkFormat(m).finish("stop", more);
        expect(chunk.startsWith("data: ")).toBe(true);
        expect(chunk.endsWith("\n\n")).toBe(true);
        const parsed = JSON.parse(chunk.slice(6, -2));
        expect(parsed).toEqual({
          id: m.id,
          object: "chat.completion.chunk",
          created: m.created,
          model: m.model,
          choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }],
          ...JSON.parse(JSON.stringify(more)),
        });
      }),
      { numRuns: 300 },
    );
  });
});
