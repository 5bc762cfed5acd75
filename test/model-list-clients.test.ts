import { createOpenAI } from "@ai-sdk/openai";
import { ChatOpenAI } from "@langchain/openai";
import { generateText, streamText } from "ai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalog } from "../src/emulator/index.js";
import { type ConfigGateway, startConfigGateway } from "./support/config-gateway.js";

// Issue 16: a front-end or agent framework takes a model from GET /v1/models and calls it. The
// channel's model list is the old new-api one, a bot and a workflow:{id} entry.
const apiKey = "sk-app-0123456789abcdefghijklmn";
const workflow = `workflow:${catalog.workflows.echo}`;

let gw: ConfigGateway;
/** The first model of each kind, as the list gives them. */
const picked = { bot: "", workflow: "" };
beforeAll(async () => {
  gw = await startConfigGateway({
    channels: [{ name: "cn-main", models: ["support-bot", workflow] }],
    apiKeys: [{ name: "app", key: apiKey }],
  });
  const res = await fetch(`${gw.url}/v1/models`, {
    headers: { authorization: `Bearer ${apiKey}` },
  });
  const list = (await res.json()) as { data: { id: string; kind: string }[] };
  picked.bot = list.data.find((m) => m.kind === "bot")?.id ?? "";
  picked.workflow = list.data.find((m) => m.kind === "workflow")?.id ?? "";
});
afterAll(async () => {
  await gw?.close();
});

/**
 * What each model answers to "hello": the echo bot repeats it, the echo workflow outputs it. A
 * streamed workflow may send its node messages before the output, so a stream is checked for
 * ending with the answer.
 */
const answers = (): [model: string, text: string][] => [
  [picked.bot, "You said: hello"],
  [picked.workflow, "hello"],
];

describe("models from /v1/models", () => {
  it("are the channel's bot and workflow:{id} entries", () => {
    expect(picked).toEqual({ bot: "support-bot", workflow });
  });

  it("answer the Vercel AI SDK over the Responses API and Chat Completions, whole and streamed", async () => {
    const openai = createOpenAI({ baseURL: `${gw.url}/v1`, apiKey });
    for (const [model, text] of answers()) {
      const viaResponses = await generateText({
        model: openai(model),
        prompt: "hello",
        maxRetries: 0,
      });
      expect(viaResponses.text, model).toBe(text);
      expect(viaResponses.response.modelId).toBe(model);
      const viaChat = await generateText({
        model: openai.chat(model),
        prompt: "hello",
        maxRetries: 0,
      });
      expect(viaChat.text, model).toBe(text);
      const streamed = streamText({
        model: openai.chat(model),
        prompt: "hello",
        maxRetries: 0,
      });
      let joined = "";
      for await (const delta of streamed.textStream) joined += delta;
      expect(joined.endsWith(text), `${model}: ${joined}`).toBe(true);
      expect(await streamed.finishReason).toBe("stop");
    }
  });

  it("answer LangChain's ChatOpenAI over Chat Completions and the Responses API, whole and streamed", async () => {
    for (const [model, text] of answers()) {
      for (const useResponsesApi of [false, true]) {
        const chat = new ChatOpenAI({
          model: model,
          apiKey,
          configuration: { baseURL: `${gw.url}/v1` },
          useResponsesApi,
          maxRetries: 0,
        });
        const where = `${model} useResponsesApi=${useResponsesApi}`;
        expect((await chat.invoke("hello")).text, where).toBe(text);
        let joined = "";
        for await (const chunk of await chat.stream("hello")) joined += chunk.text;
        expect(joined.endsWith(text), `${where}: ${joined}`).toBe(true);
      }
    }
  });
});
