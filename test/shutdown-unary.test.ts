import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterEach, beforeEach, expect, it } from "vitest";
import { catalog } from "../src/emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

// Issue #13: a unary call still running when the shutdown grace period ends gets an answer
// (gRPC/Connect Unavailable, REST 503 with a JSON error), not a reset connection, and its Coze
// chat is canceled.
const graceMs = 300;

let fx: GatewayFixture;
beforeEach(async () => {
  fx = await startGatewayFixture({ shutdownGraceMs: graceMs });
});
afterEach(async () => {
  await fx?.close();
});

const bearer: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${fx.key}`);
  return next(req);
};
const slowly = "answer slowly ".repeat(20);
const outcome = (promise: Promise<unknown>) =>
  promise.then(
    () => "answered",
    (e: unknown) => e,
  );

it("answers unary calls cut by the end of the grace period with Unavailable or 503, and cancels their chats", async () => {
  const grpc = createClient(
    ChatService,
    createGrpcTransport({ baseUrl: fx.url, interceptors: [bearer] }),
  );
  const connect = createClient(
    ChatService,
    createConnectTransport({ baseUrl: fx.url, httpVersion: "1.1", interceptors: [bearer] }),
  );
  const openai = new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: fx.key, maxRetries: 0 });
  const request = {
    botId: catalog.bots.slow,
    messages: [create(ChatMessageSchema, { role: Role.USER, content: slowly })],
  };
  const calls = [
    outcome(grpc.chat(request)),
    outcome(connect.chat(request)),
    outcome(
      openai.chat.completions.create({
        model: `bot:${catalog.bots.slow}`,
        messages: [{ role: "user", content: slowly }],
      }),
    ),
  ];
  // Every chat runs on Coze (and has sent its first events) before the shutdown starts.
  await expect.poll(() => fx.demo.emulator.stats().openStreams).toBe(3);

  await fx.gateway.close();
  const [grpcOutcome, connectOutcome, restOutcome] = await Promise.all(calls);
  expect(ConnectError.from(grpcOutcome).code).toBe(Code.Unavailable);
  expect(ConnectError.from(connectOutcome).code).toBe(Code.Unavailable);
  expect(restOutcome).toBeInstanceOf(OpenAI.APIError);
  const rest = restOutcome as InstanceType<typeof OpenAI.APIError>;
  expect(rest.status).toBe(503);
  expect(rest.error).toMatchObject({ type: "server_error", code: "unavailable" });
  // The gateway's close waits for the upstream calls under way: the cancels have been sent.
  expect(fx.demo.emulator.stats().calls["chat.cancel"] ?? 0).toBe(3);
});
