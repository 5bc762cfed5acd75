import { create } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterAll, beforeAll, expect, it } from "vitest";
import { demoModels } from "../src/demo.js";
import { catalog } from "../src/emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

// Issue #13: a client that goes away at any moment cancels its Coze chat, also before Coze's
// first event (the gateway then reads on until it learns the chat id). Coze lets a chat whose
// stream was dropped run on, keeping its conversation busy (4016): so does the emulator here.
let fx: GatewayFixture;
beforeAll(async () => {
  fx = await startGatewayFixture({
    // Every chat takes minutes: a chat that is not running any more was canceled.
    emulator: { chatsOnDisconnect: "run_on", timing: { deltaMs: 10_000, slowDeltaMs: 10_000 } },
  });
});
afterAll(async () => {
  await fx?.close();
});

const bearer: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${fx.key}`);
  return next(req);
};
const user = (content: string) => create(ChatMessageSchema, { role: Role.USER, content });

/** Resolves after `ms` real milliseconds: when to send or abort, never a wait for a result. */
const after = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

it("cancels every chat whose client went away, however early, over REST and gRPC", async () => {
  const openai = new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: fx.key, maxRetries: 0 });
  const transport = createGrpcTransport({ baseUrl: fx.url, interceptors: [bearer] });
  const grpc = createClient(ChatService, transport);
  // Warm: the Coze token is cached and connections are open, as in a gateway under way.
  await openai.chat.completions.create({
    model: demoModels.workflow,
    messages: [{ role: "user", content: "hi" }],
  });
  await createClient(WorkflowService, transport).runWorkflow({
    model: demoModels.workflow,
    parameters: { input: "hi" },
  });
  const before = fx.demo.emulator.stats();

  /** One bot or chatflow turn, aborted `delayMs` after it was sent; resolves when it ended. */
  async function abandoned(i: number, delayMs: number): Promise<void> {
    const abort = new AbortController();
    const stream = i % 2 === 0;
    const model = i % 8 < 4 ? `bot:${catalog.bots.slow}` : demoModels.chatflow;
    let call: Promise<unknown>;
    if (i % 4 < 2) {
      const request = { model, messages: [user("take your time")] };
      call = stream
        ? (async () => {
            for await (const _ of grpc.chatStream(request, { signal: abort.signal }));
          })()
        : grpc.chat(request, { signal: abort.signal });
    } else {
      call = openai.chat.completions
        .create(
          { model, messages: [{ role: "user", content: "take your time" }], stream },
          { signal: abort.signal },
        )
        .then(async (r) => {
          if (stream) for await (const _ of r as AsyncIterable<unknown>);
        });
    }
    await after(delayMs);
    abort.abort();
    await call.catch(() => {});
  }

  // 40 turns, a few ms apart, each aborted 0 to 60 ms after it was sent: before the request
  // reached Coze, while Coze created the chat, and after its first events.
  await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      await after(i * 3);
      await abandoned(i, (i * 7) % 61);
    }),
  );
  // The turns that reached Coze: the gateway may still be reading to learn their ids.
  const upstream = () => {
    const stats = fx.demo.emulator.stats();
    return {
      botChats: stats.chatsCreated - before.chatsCreated,
      chatflowChats: stats.calls["workflow.chat"] ?? 0,
      cancels: stats.calls["chat.cancel"] ?? 0,
      running: stats.chatsRunning,
    };
  };
  // Every chat that reached Coze is canceled, once: none is left running.
  await expect
    .poll(upstream, { timeout: 5_000 })
    .toSatisfy(
      (u: ReturnType<typeof upstream>) =>
        u.botChats > 0 &&
        u.chatflowChats > 0 &&
        u.running === 0 &&
        u.cancels === u.botChats + u.chatflowChats,
    );
});
