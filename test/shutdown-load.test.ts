import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalog } from "../src/emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { RunStatus, WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { type EmulatorProcess, startEmulatorProcess } from "./support/emulator-process.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gateway-process.js";

// Issue #5: graceful shutdown under load. While unary calls (1.5 s workflow runs) and streams
// (gRPC and REST) are in flight, SIGTERM: the unary calls finish with their results, every
// stream ends with Unavailable (REST: an error event, no [DONE]), and the process exits within
// its grace period.
const key = "shutdown-test-key-0123456789ab";
const graceMs = 5_000;

let emulator: EmulatorProcess;
let gateway: GatewayProcess;
beforeAll(async () => {
  emulator = await startEmulatorProcess({ timing: { slowDeltaMs: 100 } });
  gateway = await startGatewayProcess({
    emulator,
    callerKey: key,
    server: `shutdown_grace_ms: ${graceMs}`,
  });
}, 30_000);
afterAll(async () => {
  await gateway?.close();
  await emulator?.close();
});

describe("graceful shutdown under load", () => {
  it("finishes unary calls, ends streams with Unavailable and exits within the grace period", async () => {
    const transport = createGrpcTransport({
      baseUrl: gateway.url,
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${key}`);
          return next(req);
        },
      ],
    });
    const chat = createClient(ChatService, transport);
    const wf = createClient(WorkflowService, transport);
    const long = "one two three four five six seven eight nine ten ".repeat(10);
    let opened = 0;

    const unary = Array.from({ length: 20 }, (_, i) =>
      wf.runWorkflow({
        workflowId: catalog.workflows.slowAsync,
        parameters: { input: `u${i}`, run_ms: 1_500 },
      }),
    );
    const grpcStreams = Array.from({ length: 20 }, async () => {
      try {
        for await (const ev of chat.chatStream({
          botId: catalog.bots.slow,
          messages: [create(ChatMessageSchema, { role: Role.USER, content: long })],
        })) {
          if (ev.event.case === "started") opened++;
        }
        return "finished";
      } catch (e) {
        return Code[ConnectError.from(e).code];
      }
    });
    const restStreams = Array.from({ length: 10 }, async () => {
      const res = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: `bot:${catalog.bots.slow}`,
          stream: true,
          messages: [{ role: "user", content: long }],
        }),
      });
      opened++;
      return res.text();
    });

    // Every stream is open and every unary call is in flight upstream.
    await expect.poll(() => opened, { timeout: 10_000 }).toBe(30);
    await expect.poll(async () => (await emulator.stats()).calls["workflow.run"] ?? 0).toBe(20);
    const signaled = Date.now();
    gateway.child.kill("SIGTERM");

    const results = await Promise.all(unary);
    for (const [i, r] of results.entries()) {
      expect(r.status).toBe(RunStatus.SUCCEEDED);
      expect(JSON.parse(r.outputJson).output).toBe(`u${i}`);
    }
    expect(await Promise.all(grpcStreams)).toEqual(Array(20).fill("Unavailable"));
    for (const body of await Promise.all(restStreams)) {
      expect(body).toContain('"error"');
      expect(body).not.toContain("[DONE]");
    }
    const { code, at } = await gateway.exited;
    expect(code).toBe(0);
    expect(at - signaled).toBeLessThan(graceMs);
    // The upstream streams were released, not left running.
    await expect.poll(async () => (await emulator.stats()).openStreams).toBe(0);
  }, 60_000);
});
