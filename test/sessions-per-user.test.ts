// Per-end-user Coze sessions (coze-api.md §12.2): with `sessions.per_user`, each end user of each
// key gets a JWT session_name of its own, so Coze keeps their conversations apart; one token per
// session, in a bounded cache. Through the real server over gRPC and the official openai SDK.
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type GatewayConfig, hashApiKey } from "../src/config/index.js";
import { demoConfig } from "../src/demo.js";
import { catalog, type Emulator, startEmulator } from "../src/emulator/index.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { createTenant } from "../src/service/index.js";

const keyA = `sessions-a-${randomBytes(12).toString("hex")}`;
const keyB = "sessions-b-key-0123456789abcdef";
const maxCached = 3;
let emulator: Emulator;
let config: GatewayConfig;
let gateway: Gateway;

beforeAll(async () => {
  emulator = await startEmulator({ timing: { slowDeltaMs: 100 } });
  const app = await emulator.createApp();
  config = demoConfig({ port: 0, emulatorUrl: emulator.url, app, apiKey: keyA, discovery: false });
  const [channel] = config.channels;
  if (channel === undefined) throw new Error("no channel");
  channel.sessions = { perUser: true, maxCached };
  config.apiKeys.push({
    name: "b",
    sha256: hashApiKey(keyB),
    models: undefined,
    rawCozeIds: false,
  });
  gateway = await startGateway({ config });
});
afterAll(async () => {
  await gateway?.close();
  await emulator?.close();
});
beforeEach(() => emulator.reset());

/** The JWT session_name the gateway derives for `key`'s end user `user`: `tenant.userId(user)`. */
const sessionOf = (key: string, user: string) =>
  createTenant(config.serverSecret, hashApiKey(key)).userId(user);
const issued = (key: string, user: string) =>
  emulator.stats().tokensBySession[sessionOf(key, user)] ?? 0;

function transport(key: string): Transport {
  return createGrpcTransport({
    baseUrl: gateway.url,
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", `Bearer ${key}`);
        return next(req);
      },
    ],
  });
}

const message = (content: string) => [create(ChatMessageSchema, { role: Role.USER, content })];

async function rpcError(p: Promise<unknown>): Promise<ConnectError> {
  return p.then(
    () => expect.fail("the call succeeded"),
    (e: unknown) => ConnectError.from(e),
  );
}

/** The token cache's counters as `/metrics` shows them. */
async function tokenGauge(): Promise<Record<string, number>> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const [, name = "", value = ""] of text.matchAll(
    /^coze_gateway_token_cache_total\{counter="([a-z_]+)"\} (\d+)$/gm,
  )) {
    out[name] = Number(value);
  }
  const cached = /^coze_gateway_tokens_cached (\d+)$/m.exec(text);
  if (cached) out.tokens_cached = Number(cached[1]);
  return out;
}

describe("per-end-user sessions", () => {
  it("gives two end users of one key two tokens; neither sees the other's conversation", async () => {
    const chat = createClient(ChatService, transport(keyA));
    const alice = await chat.chat({ model: "coze-echo", userId: "alice", messages: message("a") });
    expect(issued(keyA, "alice")).toBe(1);
    const denied = await rpcError(
      chat.chat({
        model: "coze-echo",
        userId: "bob",
        conversationId: alice.conversationId,
        messages: message("let me in"),
      }),
    );
    expect(denied.code).toBe(Code.NotFound);
    expect(denied.metadata.get("x-coze-code")).toBe("4002"); // Coze itself refused bob
    expect(issued(keyA, "bob")).toBe(1);
    // Through the openai SDK: `user` names the end user; bob's own conversation is his alone.
    const openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: keyA, maxRetries: 0 });
    const reply = await openai.chat.completions.create({
      model: "coze-echo",
      user: "bob",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(reply.choices[0]?.message.content).toBe("You said: hi");
    expect(issued(keyA, "bob")).toBe(1);
    const again = await chat.chat({
      model: "coze-echo",
      userId: "alice",
      conversationId: alice.conversationId,
      messages: message("still me"),
    });
    expect(again.conversationId).toBe(alice.conversationId);
    expect(issued(keyA, "alice")).toBe(1);
  });

  it("keeps the same end user name of two keys in two sessions", async () => {
    await createClient(ChatService, transport(keyA)).chat({
      model: "coze-echo",
      userId: "zoe",
      messages: message("a"),
    });
    await createClient(ChatService, transport(keyB)).chat({
      model: "coze-echo",
      userId: "zoe",
      messages: message("b"),
    });
    expect(sessionOf(keyA, "zoe")).not.toBe(sessionOf(keyB, "zoe"));
    expect([issued(keyA, "zoe"), issued(keyB, "zoe")]).toEqual([1, 1]);
  });

  it("fetches one token for 100 concurrent calls of one end user", async () => {
    const chat = createClient(ChatService, transport(keyA));
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        chat.chat({ model: "coze-echo", userId: "carol", messages: message(`n${i}`) }),
      ),
    );
    expect(replies).toHaveLength(100);
    expect(issued(keyA, "carol")).toBe(1);
    expect(emulator.stats().tokenRequests).toBe(1);
  });

  it("holds at most max_cached sessions, a flooding key dropping its own, counted exactly", async () => {
    const chat = createClient(ChatService, transport(keyA));
    const other = createClient(ChatService, transport(keyB));
    const turn = (client: typeof chat, user: string) =>
      client.chat({ model: "coze-echo", userId: user, messages: message(user) });
    await turn(other, "yan"); // key B's one session
    const before = await tokenGauge();
    expect(before.tokens_cached).toBe(maxCached); // earlier tests filled the cache
    const users = ["u1", "u2", "u3", "u4", "u5"];
    for (const user of users) await turn(chat, user);
    expect(users.map((u) => issued(keyA, u))).toEqual([1, 1, 1, 1, 1]);
    let gauge = await tokenGauge();
    expect(gauge.tokens_cached).toBe(maxCached);
    expect((gauge.tokens_fetched ?? 0) - (before.tokens_fetched ?? 0)).toBe(5);
    expect((gauge.tokens_evicted ?? 0) - (before.tokens_evicted ?? 0)).toBe(5);
    // Key A holds the most, so each of its new end users dropped one of its own: B's stays.
    await turn(other, "yan");
    expect(issued(keyB, "yan")).toBe(1);

    // A holds u4 and u5. u5 is cached: no fetch. u1 was dropped: it fetches a second token,
    // dropping u4, A's least recently used.
    await turn(chat, "u5");
    await turn(chat, "u1");
    expect([issued(keyA, "u5"), issued(keyA, "u1")]).toEqual([1, 2]);
    await turn(chat, "u4");
    expect(issued(keyA, "u4")).toBe(2);
    gauge = await tokenGauge();
    expect(gauge.tokens_cached).toBe(maxCached);
    expect((gauge.tokens_fetched ?? 0) - (before.tokens_fetched ?? 0)).toBe(7);
    expect((gauge.tokens_evicted ?? 0) - (before.tokens_evicted ?? 0)).toBe(7);
    expect(issued(keyB, "yan")).toBe(1);
  });

  it("cancels a chat in its end user's session when CancelChat names the user", async () => {
    const chat = createClient(ChatService, transport(keyA));
    const model = `bot:${catalog.bots.slow}`;
    const stream = chat.chatStream({ model, userId: "dave", messages: message("go") });
    let ids: { conversationId: string; chatId: string } | undefined;
    for await (const event of stream) {
      if (event.event.case === "started") {
        ids = {
          conversationId: event.event.value.conversationId,
          chatId: event.event.value.chatId,
        };
        break;
      }
    }
    if (ids === undefined) throw new Error("no started event");
    // Without the end user, the key's own session does not know the chat.
    const wrong = await rpcError(chat.cancelChat({ model, ...ids }));
    expect(wrong.code).toBe(Code.NotFound);
    const done = await chat.cancelChat({ model, ...ids, userId: "dave" });
    expect(done.canceled).toBe(true);
  });
});
