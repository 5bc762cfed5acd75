import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalog } from "../src/emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

let fx: GatewayFixture;
beforeAll(async () => {
  fx = await startGatewayFixture();
});
afterAll(async () => {
  await fx?.close();
});

const user = (content: string) => create(ChatMessageSchema, { role: Role.USER, content });

/**
 * Sends the deadline as a header only: the client itself never times out, so what the caller
 * gets is what the gateway answered when the deadline it was given passed.
 */
function deadlineHeader(name: string, value: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${fx.key}`);
    req.header.set(name, value);
    return next(req);
  };
}

const transports: [string, () => Transport][] = [
  [
    "gRPC (grpc-timeout)",
    () =>
      createGrpcTransport({
        baseUrl: fx.url,
        interceptors: [deadlineHeader("grpc-timeout", "150m")],
      }),
  ],
  [
    "Connect (connect-timeout-ms)",
    () =>
      createConnectTransport({
        baseUrl: fx.url,
        httpVersion: "1.1",
        interceptors: [deadlineHeader("connect-timeout-ms", "150")],
      }),
  ],
];

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => ConnectError.from(e),
  );

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream);
}

describe.each(transports)("a deadline that passes, over %s", (_name, make) => {
  it("is DeadlineExceeded for a unary chat, and the Coze chat is canceled", async () => {
    const cancels = fx.demo.emulator.stats().calls["chat.cancel"] ?? 0;
    const chat = createClient(ChatService, make());
    const err = await failure(
      chat.chat({ botId: catalog.bots.slow, messages: [user("take your time")] }),
    );
    expect(err.code).toBe(Code.DeadlineExceeded);
    await expect
      .poll(() => fx.demo.emulator.stats().calls["chat.cancel"] ?? 0)
      .toBeGreaterThan(cancels);
  });

  it("is DeadlineExceeded for a streamed chat", async () => {
    const chat = createClient(ChatService, make());
    const err = await failure(
      drain(chat.chatStream({ botId: catalog.bots.slow, messages: [user("take your time")] })),
    );
    expect(err.code).toBe(Code.DeadlineExceeded);
  });

  it("is DeadlineExceeded for a workflow run waited on by polling", async () => {
    const wf = createClient(WorkflowService, make());
    const err = await failure(
      wf.runWorkflow({
        workflowId: catalog.workflows.slowAsync,
        parameters: { input: "x", polls: 1000 },
      }),
    );
    expect(err.code).toBe(Code.DeadlineExceeded);
  });
});
