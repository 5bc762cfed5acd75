import { type AIMessageChunk, HumanMessage, ToolMessage } from "@langchain/core/messages";
import { ChatOpenAI } from "@langchain/openai";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { demoModels } from "../src/demo.js";
import { usageFor } from "../src/emulator/chat-model.js";
import { catalog } from "../src/emulator/index.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

// Issue 14: LangChain's ChatOpenAI with `useResponsesApi: true` calls POST /v1/responses.
let fx: GatewayFixture;
beforeAll(async () => {
  fx = await startGatewayFixture();
});
afterAll(async () => {
  await fx?.close();
});
beforeEach(() => fx.demo.emulator.reset());
afterEach(async () => {
  await expect.poll(() => fx.demo.emulator.stats().openStreams).toBe(0);
});

const chat = (model: string) =>
  new ChatOpenAI({
    model,
    apiKey: fx.key,
    configuration: { baseURL: `${fx.url}/v1` },
    useResponsesApi: true,
    maxRetries: 0,
  });

async function streamed(model: ChatOpenAI, input: string) {
  let text = "";
  let chunks = 0;
  let last: AIMessageChunk | undefined;
  for await (const c of await model.stream(input)) {
    text += c.text;
    chunks += 1;
    last = last ? last.concat(c) : c;
  }
  return { text, chunks, message: last };
}

describe("LangChain ChatOpenAI with useResponsesApi", () => {
  it("invokes a bot: the answer, its reasoning block, usage and the response id", async () => {
    const r = await chat("coze-reasoning").invoke("why");
    expect(r.text).toBe("You said: why");
    expect(r.content).toContainEqual({
      type: "reasoning",
      reasoning: 'The user wrote "why". I will repeat it back to them.',
    });
    const m = await chat("coze-echo").invoke("hello");
    expect(m.text).toBe("You said: hello");
    const u = usageFor("hello".length, "You said: hello".length);
    expect(m.usage_metadata).toMatchObject({
      input_tokens: u.input_count,
      output_tokens: u.output_count,
      total_tokens: u.token_count,
    });
    expect(m.response_metadata.id).toMatch(/^resp_/);
  });

  it("streams a bot's answer in several chunks, with the usage at the end", async () => {
    const s = await streamed(chat("coze-echo"), "one two three four");
    expect(s.text).toBe("You said: one two three four");
    expect(s.chunks).toBeGreaterThan(2);
    expect(s.message?.usage_metadata?.input_tokens).toBe(
      usageFor("one two three four".length, s.text.length).input_count,
    );
  });

  it("round-trips a tool call through a ToolMessage", async () => {
    const model = chat("coze-tool").bindTools([
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "The weather in a city",
          parameters: { type: "object", properties: { location: { type: "string" } } },
        },
      },
    ]);
    const question = new HumanMessage("Paris");
    const first = await model.invoke([question]);
    expect(first.tool_calls?.map((c) => [c.name, c.args])).toEqual([
      ["get_weather", { location: "Paris" }],
    ]);
    const id = first.tool_calls?.[0]?.id ?? "";
    const second = await model.invoke([
      question,
      first,
      new ToolMessage({ tool_call_id: id, content: "sunny" }),
    ]);
    expect(second.text).toBe("The tool said: sunny");
    expect(fx.demo.emulator.stats().calls["chat.submit_tool_outputs"]).toBe(1);
  });

  it("invokes and streams a workflow", async () => {
    expect((await chat(demoModels.workflow).invoke("hi")).text).toBe("hi");
    expect((await streamed(chat(demoModels.workflow), "hi")).text).toBe("hi");
  });

  it("raises a Coze failure during a stream instead of ending it as an answer", async () => {
    await expect(streamed(chat(`bot:${catalog.bots.failing}`), "x")).rejects.toMatchObject({
      code: "upstream_error",
    });
    fx.demo.emulator.faults.inject({ kind: "reset", endpoint: "chat", afterEvents: 4 });
    await expect(streamed(chat("coze-echo"), "one two three four five")).rejects.toThrow(/Coze/);
  });

  it("raises the 404 of an unknown model", async () => {
    await expect(chat("no-such-model").invoke("x")).rejects.toMatchObject({ status: 404 });
  });
});
