// A channel whose credential is a personal access token (new-api's plain Coze channel,
// coze-api.md §11), through the real server: the official openai SDK and gRPC.
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type GatewayConfig, hashApiKey } from "../src/config/index.js";
import { demoConfig } from "../src/demo.js";
import { catalog, type Emulator, startEmulator } from "../src/emulator/index.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { createObservability } from "../src/observability/index.js";
import { captureLog, type LogCapture } from "./support/log-capture.js";

const day = 86_400_000;
const otherKey = "pat-other-key-0123456789abcdef";
let offset = 0;
let emulator: Emulator;
let log: LogCapture;
const gateways: Gateway[] = [];

beforeAll(async () => {
  emulator = await startEmulator({ now: () => Date.now() + offset });
});
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
  emulator.reset();
});
afterAll(() => emulator.close());

/** A gateway whose one channel authenticates with `token`; returns it and its caller key. */
async function gatewayWith(token: string): Promise<{ gateway: Gateway; key: string }> {
  const key = `pat-test-${randomBytes(12).toString("hex")}`;
  const app = await emulator.createApp(); // demoConfig wants one; the channel does not use it
  const config: GatewayConfig = demoConfig({
    port: 0,
    emulatorUrl: emulator.url,
    app,
    apiKey: key,
  });
  const [channel] = config.channels;
  if (channel === undefined) throw new Error("no channel");
  channel.credential = { kind: "pat", token };
  config.apiKeys.push({
    name: "other",
    sha256: hashApiKey(otherKey),
    models: undefined,
    rawCozeIds: false,
  });
  log = captureLog();
  const observability = createObservability({ level: "debug", destination: log.out });
  const gateway = await startGateway({ config, observability });
  gateways.push(gateway);
  return { gateway, key };
}

const openai = (gateway: Gateway, key: string) =>
  new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: key, maxRetries: 0 });

const grpc = (gateway: Gateway, key: string) =>
  createGrpcTransport({
    baseUrl: gateway.url,
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", `Bearer ${key}`);
        return next(req);
      },
    ],
  });

async function openAiError(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const err = await p.then(
    () => expect.fail("the call succeeded"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OpenAI.APIError);
  return err as InstanceType<typeof OpenAI.APIError>;
}

const ask = (client: OpenAI) =>
  client.chat.completions.create({
    model: "coze-echo",
    messages: [{ role: "user", content: "hi" }],
  });

describe("a personal access token channel", () => {
  it("chats and runs workflows with the token as bearer, never asking for a token", async () => {
    const pat = emulator.createPat();
    const { gateway, key } = await gatewayWith(pat.token);
    const reply = await ask(openai(gateway, key));
    expect(reply.choices[0]?.message.content).toBe("You said: hi");
    const run = await createClient(WorkflowService, grpc(gateway, key)).runWorkflow({
      model: `workflow:${catalog.workflows.echo}`,
      parameters: { input: "x" },
    });
    expect(run.outputJson).toBe('{"output":"x"}');
    const stats = emulator.stats();
    expect(stats.tokenRequests).toBe(0);
    expect([stats.calls.chat, stats.calls["workflow.run"]]).toEqual([1, 1]);
  });

  it("says which channel's token expired, once, without retrying or quoting it", async () => {
    const pat = emulator.createPat({ lifetimeSeconds: 86_400 });
    const { gateway, key } = await gatewayWith(pat.token);
    await ask(openai(gateway, key));
    offset += day; // the token's 1-day life is over
    try {
      emulator.reset();
      const err = await openAiError(ask(openai(gateway, key)));
      expect(err.status).toBe(502);
      expect(err.message).toContain(
        "chat.stream: the gateway could not authenticate to Coze (Coze code 4100): channel demo: Coze refused its personal access token: it is unknown, expired or revoked",
      );
      // Nothing to refresh: the call went out once, and no token was requested.
      expect(emulator.stats().calls.chat).toBe(1);
      expect(emulator.stats().tokenRequests).toBe(0);

      const rpc = await createClient(ChatService, grpc(gateway, key))
        .chat({
          model: "coze-echo",
          messages: [create(ChatMessageSchema, { role: Role.USER, content: "x" })],
        })
        .then(
          () => expect.fail("the call succeeded"),
          (e: unknown) => ConnectError.from(e),
        );
      expect(rpc.code).toBe(Code.Internal);
      expect(rpc.rawMessage).toMatch(/channel demo: Coze refused its personal access token/);
      expect(rpc.metadata.get("x-coze-code")).toBe("4100");
      for (const text of [err.message, JSON.stringify(err.error), rpc.message, log.text()]) {
        expect(text).not.toContain(pat.token);
      }
      await new Promise((r) => setImmediate(r));
      const failed = log.lines().filter((l) => l.msg === "coze call failed");
      expect(failed.at(-1)).toMatchObject({
        channel: "demo",
        step: "chat.stream",
        outcome: "authentication",
        status: 401,
      });
    } finally {
      offset -= day;
    }
  });

  it("says a revoked token was refused, with HTTP 200 auth errors too", async () => {
    const lenient = await startEmulator({ authErrorStatus: 200 });
    try {
      const pat = lenient.createPat();
      const app = await lenient.createApp();
      const key = `pat-test-${randomBytes(12).toString("hex")}`;
      const config = demoConfig({ port: 0, emulatorUrl: lenient.url, app, apiKey: key });
      const [channel] = config.channels;
      if (channel === undefined) throw new Error("no channel");
      channel.credential = { kind: "pat", token: pat.token };
      const gateway = await startGateway({ config });
      gateways.push(gateway);
      lenient.revokeAllTokens();
      const err = await openAiError(ask(openai(gateway, key)));
      expect(err.status).toBe(502);
      expect(err.message).toMatch(
        /channel demo: Coze refused its personal access token: it is unknown, expired or revoked/,
      );
      expect(lenient.stats().calls.chat).toBe(1);
    } finally {
      await lenient.close();
    }
  });

  it("says which permission is missing (4101) and keeps the calls it allows", async () => {
    const pat = emulator.createPat({ permissions: ["workflow"] });
    const { gateway, key } = await gatewayWith(pat.token);
    const err = await openAiError(ask(openai(gateway, key)));
    expect(err.status).toBe(403);
    expect(err.message).toContain(
      "chat.stream: Coze denied access to this resource (Coze code 4101): channel demo: Coze refused its personal access token for this call: the token lacks the permission or the workspace",
    );
    expect(emulator.stats().calls.chat).toBe(1);
    const run = await createClient(WorkflowService, grpc(gateway, key)).runWorkflow({
      model: `workflow:${catalog.workflows.echo}`,
      parameters: { input: "still allowed" },
    });
    expect(run.outputJson).toBe('{"output":"still allowed"}');
  });

  it("keeps two keys apart with the gateway's sealed ids, though Coze sees one account", async () => {
    const pat = emulator.createPat();
    const { gateway, key } = await gatewayWith(pat.token);
    const chat = createClient(ChatService, grpc(gateway, key));
    const first = await chat.chat({
      model: "coze-echo",
      messages: [create(ChatMessageSchema, { role: Role.USER, content: "mine" })],
    });
    const calls = emulator.stats().calls.chat ?? 0;
    const stranger = createClient(ChatService, grpc(gateway, otherKey));
    const err = await stranger
      .chat({
        model: "coze-echo",
        conversationId: first.conversationId,
        messages: [create(ChatMessageSchema, { role: Role.USER, content: "let me in" })],
      })
      .then(
        () => expect.fail("the call succeeded"),
        (e: unknown) => ConnectError.from(e),
      );
    expect(err.code).toBe(Code.NotFound);
    expect(emulator.stats().calls.chat).toBe(calls); // refused before Coze
    const own = await chat.chat({
      model: "coze-echo",
      conversationId: first.conversationId,
      messages: [create(ChatMessageSchema, { role: Role.USER, content: "again" })],
    });
    expect(own.conversationId).toBe(first.conversationId);
  });
});
