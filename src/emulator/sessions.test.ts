import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalog } from "./catalog.js";
import { startEmulator } from "./server.js";
import { callApi, mintToken, parseSseFrames } from "./testing.js";
import type { Emulator, GeneratedApp } from "./types.js";

let emulator: Emulator;
let app: GeneratedApp;

beforeAll(async () => {
  // Slow enough that a slow chat is still running when the test cancels it.
  emulator = await startEmulator({ timing: { slowDeltaMs: 200 } });
  app = await emulator.createApp();
});
afterAll(() => emulator.close());

type Json = Record<string, unknown>;
const user = (content: string) => ({ role: "user", content, content_type: "text" });
const UNKNOWN = "7000000000000000000";
/** A token of `app` (default: the shared one) for `session` (`undefined`: no session_name). */
const tokenFor = (session: string | undefined, owner = app) =>
  mintToken(emulator, owner, { claims: { session_name: session } });

/** A chat with the slow bot, in `conversationId` or a new conversation; returns its ids. */
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

/** The Coze `code` of a new chat, plain and streamed, in `conversationId`. */
async function chatCodes(token: string, conversationId: string) {
  const body = { bot_id: catalog.bots.echo, user_id: "u1", additional_messages: [user("x")] };
  const path = `/v3/chat?conversation_id=${conversationId}`;
  const plain = await callApi(emulator, token, "POST", path, body);
  const streamed = await callApi(emulator, token, "POST", path, { ...body, stream: true });
  return [plain.json().code, streamed.json().code];
}

async function status(token: string, ids: { conversationId: string; chatId: string }) {
  const query = `conversation_id=${ids.conversationId}&chat_id=${ids.chatId}`;
  const reply = await callApi(emulator, token, "GET", `/v3/chat/retrieve?${query}`);
  return reply.json<{ data: Json }>().data.status;
}

async function cancel(token: string, ids: { conversationId: string; chatId: string }) {
  const body = { conversation_id: ids.conversationId, chat_id: ids.chatId };
  return (await callApi(emulator, token, "POST", "/v3/chat/cancel", body)).json().code;
}

describe("chat lookups", () => {
  it("answer 4002 for an unknown conversation and 4200 for an unknown chat in a known one", async () => {
    const token = await tokenFor(undefined);
    const known = await slowChat(token);
    expect(await lookupCodes(token, UNKNOWN, known.chatId)).toEqual(Array(5).fill(4002));
    expect(await lookupCodes(token, known.conversationId, UNKNOWN)).toEqual(Array(5).fill(4200));
    expect(await cancel(token, known)).toBe(0);
  });
});

describe("session_name isolation (§12.2)", () => {
  it.each([
    { name: "session A from session B", owner: "user-a", other: "user-b" },
    { name: "a session from no session", owner: "user-a", other: undefined },
    { name: "no session from a session", owner: undefined, other: "user-a" },
  ])("hides the conversations and chats of $name behind 4002", async ({ owner, other }) => {
    const mine = await tokenFor(owner);
    const theirs = await tokenFor(other);
    const ids = await slowChat(mine);
    expect(await chatCodes(theirs, ids.conversationId)).toEqual([4002, 4002]);
    expect(await lookupCodes(theirs, ids.conversationId, ids.chatId)).toEqual(Array(5).fill(4002));
    // The other session's cancel did nothing: the owner's chat still runs, and the owner ends it.
    expect(await status(mine, ids)).toBe("in_progress");
    expect(await cancel(mine, ids)).toBe(0);
    expect(await status(mine, ids)).toBe("canceled");
  });

  it("answers the other session exactly as for an unknown conversation", async () => {
    const ids = await slowChat(await tokenFor("user-a"));
    const theirs = await tokenFor("user-b");
    const foreign = await callApi(
      emulator,
      theirs,
      "GET",
      `/v3/chat/retrieve?conversation_id=${ids.conversationId}&chat_id=${ids.chatId}`,
    );
    const unknown = await callApi(
      emulator,
      theirs,
      "GET",
      `/v3/chat/retrieve?conversation_id=${UNKNOWN}&chat_id=${ids.chatId}`,
    );
    const strip = (text: string) => ({ ...JSON.parse(text), detail: null, msg: null });
    expect(strip(foreign.text)).toEqual(strip(unknown.text));
    expect(foreign.json().msg).toBe(`conversation ${ids.conversationId} not found`);
    expect(await cancel(await tokenFor("user-a"), ids)).toBe(0);
  });

  it("lets every token of the same app and session use the conversation", async () => {
    const ids = await slowChat(await tokenFor("user-a"));
    const again = await tokenFor("user-a");
    expect(await status(again, ids)).toBe("in_progress");
    expect(await cancel(again, ids)).toBe(0);
    const next = await slowChat(again, ids.conversationId);
    expect(next.conversationId).toBe(ids.conversationId);
    expect(await cancel(again, next)).toBe(0);
  });

  it("keeps the same session_name of two apps apart", async () => {
    const otherApp = await emulator.createApp();
    const ids = await slowChat(await tokenFor("user-a"));
    const theirs = await tokenFor("user-a", otherApp);
    expect(await chatCodes(theirs, ids.conversationId)).toEqual([4002, 4002]);
    expect(await lookupCodes(theirs, ids.conversationId, ids.chatId)).toEqual(Array(5).fill(4002));
    expect(await cancel(await tokenFor("user-a"), ids)).toBe(0);
  });

  it("isolates chatflow conversations too", async () => {
    const chatflow = (token: string, conversationId?: string) =>
      callApi(emulator, token, "POST", "/v1/workflows/chat", {
        workflow_id: catalog.workflows.chatflow,
        additional_messages: [user("hi")],
        ...(conversationId === undefined ? {} : { conversation_id: conversationId }),
      });
    const mine = await tokenFor("user-a");
    const first = parseSseFrames((await chatflow(mine)).text);
    const conversationId = String(JSON.parse(first[0]?.data ?? "{}").conversation_id);
    expect((await chatflow(await tokenFor("user-b"), conversationId)).json().code).toBe(4002);
    expect((await chatflow(await tokenFor(undefined), conversationId)).json().code).toBe(4002);
    const again = parseSseFrames((await chatflow(mine, conversationId)).text);
    expect(JSON.parse(again[0]?.data ?? "{}").conversation_id).toBe(conversationId);
  });

  it("reports the session_name of issued tokens over the admin API, never the tokens", async () => {
    const before = emulator.stats().tokensBySession;
    const token = await tokenFor("admin-probe");
    const res = await fetch(`${emulator.url}/__emulator/stats`);
    const text = await res.text();
    const stats = JSON.parse(text) as { tokensBySession: Record<string, number> };
    expect(stats.tokensBySession["admin-probe"]).toBe((before["admin-probe"] ?? 0) + 1);
    expect(text).not.toContain(token);
  });
});
