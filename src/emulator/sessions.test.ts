import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalog } from "./catalog.js";
import { startEmulator } from "./server.js";
import { callApi, mintToken } from "./testing.js";
import type { Emulator, GeneratedApp } from "./types.js";

let emulator: Emulator;
let app: GeneratedApp;

beforeAll(async () => {
  emulator = await startEmulator();
  app = await emulator.createApp();
});
afterAll(() => emulator.close());

type Json = Record<string, unknown>;
const user = (content: string) => ({ role: "user", content, content_type: "text" });

/** Starts a slow chat (it stays `in_progress`, so cancel works) and returns its ids. */
async function slowChat(token: string, conversationId = "") {
  const reply = await callApi(
    emulator,
    token,
    "POST",
    `/v3/chat?conversation_id=${conversationId}`,
    {
      bot_id: catalog.bots.slow,
      user_id: "u1",
      additional_messages: [user("hello")],
    },
  );
  const data = reply.json<{ code: number; data: Json }>();
  expect(data.code).toBe(0);
  return { conversationId: String(data.data.conversation_id), chatId: String(data.data.id) };
}

/** The Coze `code` of each chat endpoint that names `conversationId` and `chatId`. */
async function lookupCodes(token: string, conversationId: string, chatId: string) {
  const query = `conversation_id=${conversationId}&chat_id=${chatId}`;
  const calls = [
    callApi(emulator, token, "GET", `/v3/chat/retrieve?${query}`),
    callApi(emulator, token, "POST", `/v3/chat/retrieve?${query}`),
    callApi(emulator, token, "GET", `/v3/chat/message/list?${query}`),
    callApi(emulator, token, "POST", "/v3/chat/cancel", {
      conversation_id: conversationId,
      chat_id: chatId,
    }),
    callApi(emulator, token, "POST", `/v3/chat/submit_tool_outputs?${query}`, {
      tool_outputs: [{ tool_call_id: "1", output: "x" }],
    }),
  ];
  return (await Promise.all(calls)).map((reply) => reply.json().code);
}

describe("chat lookups", () => {
  it("answer 4002 for an unknown conversation and 4200 for an unknown chat in a known one", async () => {
    const token = await mintToken(emulator, app);
    const known = await slowChat(token);
    expect(await lookupCodes(token, "7000000000000000000", known.chatId)).toEqual(
      Array(5).fill(4002),
    );
    expect(await lookupCodes(token, known.conversationId, "7000000000000000000")).toEqual(
      Array(5).fill(4200),
    );
    await callApi(emulator, token, "POST", "/v3/chat/cancel", {
      conversation_id: known.conversationId,
      chat_id: known.chatId,
    });
  });
});
