import { createOpenAI } from "@ai-sdk/openai";
import {
  APICallError,
  generateText,
  jsonSchema,
  type ModelMessage,
  stepCountIs,
  streamText,
  tool,
} from "ai";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { demoModels } from "../src/demo.js";
import { usageFor } from "../src/emulator/chat-model.js";
import { catalog } from "../src/emulator/index.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

// Issue 14: the Vercel AI SDK's default OpenAI provider speaks the Responses API
// (`openai(model)` is `openai.responses(model)` in @ai-sdk/openai 3).
let fx: GatewayFixture;
let openai: ReturnType<typeof createOpenAI>;
beforeAll(async () => {
  fx = await startGatewayFixture();
  openai = createOpenAI({ baseURL: `${fx.url}/v1`, apiKey: fx.key });
});
afterAll(async () => {
  await fx?.close();
});
beforeEach(() => fx.demo.emulator.reset());
afterEach(async () => {
  await expect.poll(() => fx.demo.emulator.stats().openStreams).toBe(0);
});

const weather = tool({
  description: "The weather in a city",
  inputSchema: jsonSchema<{ location: string }>({
    type: "object",
    properties: { location: { type: "string" } },
    required: ["location"],
  }),
  execute: async ({ location }) => `sunny in ${location}`,
});

describe("the AI SDK's default OpenAI provider", () => {
  it("generates text from a bot, with its usage and a response id, over /v1/responses", async () => {
    const r = await generateText({ model: openai("coze-echo"), prompt: "hello", maxRetries: 0 });
    expect(r.text).toBe("You said: hello");
    expect(r.finishReason).toBe("stop");
    const u = usageFor("hello".length, r.text.length);
    expect([r.usage.inputTokens, r.usage.outputTokens, r.usage.totalTokens]).toEqual([
      u.input_count,
      u.output_count,
      u.token_count,
    ]);
    expect(r.response.id).toMatch(/^resp_/);
    expect(r.response.modelId).toBe("coze-echo");
  });

  it("streams text and reasoning", async () => {
    const s = streamText({ model: openai("coze-reasoning"), prompt: "why", maxRetries: 0 });
    const chunks: string[] = [];
    for await (const t of s.textStream) chunks.push(t);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.join("")).toBe("You said: why");
    expect(await s.reasoningText).toBe('The user wrote "why". I will repeat it back to them.');
    expect(await s.finishReason).toBe("stop");
  });

  it("runs a tool call: the tool's output continues the same Coze chat", async () => {
    const r = await generateText({
      model: openai("coze-tool"),
      prompt: "Paris",
      tools: { get_weather: weather },
      stopWhen: stepCountIs(3),
      maxRetries: 0,
    });
    expect(r.steps).toHaveLength(2);
    expect(r.steps[0]?.toolCalls.map((c) => [c.toolName, c.input])).toEqual([
      ["get_weather", { location: "Paris" }],
    ]);
    expect(r.text).toBe("The tool said: sunny in Paris");
    const stats = fx.demo.emulator.stats();
    expect(stats.calls["chat.submit_tool_outputs"]).toBe(1);
    expect(stats.chatsCreated).toBe(1);
  });

  it("streams a tool call and the answer after it", async () => {
    const s = streamText({
      model: openai("coze-tool"),
      prompt: "Oslo",
      tools: { get_weather: weather },
      stopWhen: stepCountIs(3),
      maxRetries: 0,
    });
    expect(await s.text).toBe("The tool said: sunny in Oslo");
    expect((await s.steps)[0]?.finishReason).toBe("tool-calls");
  });

  it("continues the conversation from the previous response's messages (item references)", async () => {
    const first = await generateText({
      model: openai("coze-echo"),
      prompt: "first",
      maxRetries: 0,
    });
    const messages: ModelMessage[] = [
      { role: "user", content: "first" },
      ...first.response.messages,
      { role: "user", content: "!received" },
    ];
    const again = await generateText({ model: openai("coze-echo"), messages, maxRetries: 0 });
    const seen = JSON.parse(again.text).messages.map((m: { content: string }) => m.content);
    expect(seen).toEqual(["first", "You said: first", "!received"]);
    expect(fx.demo.emulator.stats().chatsCreated).toBe(2);
  });

  it("runs a workflow", async () => {
    const r = await generateText({
      model: openai(demoModels.workflow),
      prompt: "hi",
      maxRetries: 0,
    });
    expect(r.text).toBe("hi");
  });

  it("rejects an unknown model with the 404", async () => {
    const err = await generateText({
      model: openai("no-such-model"),
      prompt: "x",
      maxRetries: 0,
    }).catch((e: unknown) => e);
    expect(APICallError.isInstance(err)).toBe(true);
    expect((err as APICallError).statusCode).toBe(404);
  });

  it("reports a Coze failure in the middle of a stream as an error, not as a finished answer", async () => {
    fx.demo.emulator.faults.inject({ kind: "reset", endpoint: "chat", afterEvents: 4 });
    const errors: unknown[] = [];
    const s = streamText({
      model: openai("coze-echo"),
      prompt: "one two three four five",
      maxRetries: 0,
      onError: ({ error }) => {
        errors.push(error);
      },
    });
    const parts: string[] = [];
    for await (const p of s.fullStream) parts.push(p.type);
    expect(parts).toContain("text-delta");
    expect(parts).toContain("error");
    // Reported by response.failed and again by the error event that follows it.
    expect(errors.length).toBeGreaterThan(0);
    expect(await s.finishReason).toBe("error");
  });

  it("fails a stream whose bot fails before any output", async () => {
    const s = streamText({
      model: openai(`bot:${catalog.bots.failing}`),
      prompt: "x",
      maxRetries: 0,
      onError: () => {},
    });
    await expect(s.text).rejects.toThrow();
  });
});
