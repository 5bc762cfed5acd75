import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoConfig, demoModels } from "../src/demo.js";
import type { Fault } from "../src/emulator/index.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { type EmulatorProcess, startEmulatorProcess } from "./support/emulator-process.js";

// Issue #5: a bounded soak — mixed REST and gRPC traffic for SOAK_SECONDS (default 120) with
// faults injected every two seconds. Memory must stay bounded and the only errors must be the
// injected ones: each fault hits one call, and its error is the kind that fault causes.
const seconds = Number(process.env.SOAK_SECONDS ?? 120);
const workers = 8;
const key = "soak-test-key-0123456789abcdef";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const heapAfterGc = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

let emulator: EmulatorProcess;
let gateway: Gateway;
beforeAll(async () => {
  emulator = await startEmulatorProcess({ timing: { deltaMs: 2 } });
  const config = demoConfig({
    emulatorUrl: emulator.url,
    app: emulator.app,
    apiKey: key,
    port: 0,
    pollIntervalMs: 20,
  });
  gateway = await startGateway({ config });
});
afterAll(async () => {
  await gateway?.close();
  await emulator?.close();
});

/** The faults the soak injects and the outcome each may cause in the one call it hits. */
const faults: { fault: Fault; visible: boolean }[] = [
  { fault: { kind: "status", endpoint: "chat", status: 503, times: 1 }, visible: true },
  {
    fault: { kind: "status", endpoint: "chat", status: 429, times: 1, retryAfterSeconds: 1 },
    visible: true,
  },
  { fault: { kind: "reset", endpoint: "chat", afterEvents: 2, times: 1 }, visible: true },
  // Reads are retried by the gateway: this one must never reach a caller.
  {
    fault: { kind: "status", endpoint: "workflow.history", status: 502, times: 1 },
    visible: false,
  },
];
const allowedRest = new Set([429, 503]);
const allowedGrpc = new Set([Code.Unavailable, Code.ResourceExhausted]);

describe("soak", () => {
  it(
    `serves ${seconds}s of mixed traffic with faults, errors only where injected, memory bounded`,
    async () => {
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
      const message = [create(ChatMessageSchema, { role: Role.USER, content: "soak" })];
      const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
      const restBody = (stream: boolean) =>
        JSON.stringify({
          model: demoModels.bot,
          stream,
          messages: [{ role: "user", content: "soak" }],
        });

      let requests = 0;
      const unexpected: string[] = [];
      let injectedErrors = 0;
      /** One call of each scenario; returns true when it failed as an injected fault may. */
      const scenarios: (() => Promise<boolean>)[] = [
        async () => {
          const res = await fetch(`${gateway.url}/v1/chat/completions`, {
            method: "POST",
            headers,
            body: restBody(false),
          });
          const body = await res.text();
          if (res.status === 200 && body.includes("You said: soak")) return false;
          if (allowedRest.has(res.status)) return true;
          unexpected.push(`REST ${res.status} ${body.slice(0, 200)}`);
          return false;
        },
        async () => {
          const res = await fetch(`${gateway.url}/v1/chat/completions`, {
            method: "POST",
            headers,
            body: restBody(true),
          });
          const body = await res.text();
          if (res.status === 200 && body.endsWith("data: [DONE]\n\n") && !body.includes('"error"'))
            return false;
          // A cut stream ends with an error event and no [DONE]; a refused one with 429 / 503.
          if (
            allowedRest.has(res.status) ||
            (res.status === 200 && body.includes('"error"') && !body.includes("[DONE]"))
          ) {
            return true;
          }
          unexpected.push(`REST stream ${res.status} ${body.slice(-200)}`);
          return false;
        },
        async () => {
          try {
            let completed = false;
            for await (const ev of chat.chatStream({ model: demoModels.bot, messages: message })) {
              if (ev.event.case === "completed") completed = true;
            }
            if (!completed) unexpected.push("gRPC stream ended without completed");
            return false;
          } catch (e) {
            const err = ConnectError.from(e);
            if (allowedGrpc.has(err.code)) return true;
            unexpected.push(`gRPC ${Code[err.code]} ${err.rawMessage}`);
            return false;
          }
        },
        async () => {
          try {
            const res = await wf.runWorkflow({
              model: demoModels.workflowAsync,
              parameters: { input: "s", polls: 2 },
            });
            if (res.outputJson === "") unexpected.push("async run without output");
            return false;
          } catch (e) {
            const err = ConnectError.from(e);
            unexpected.push(`gRPC workflow ${Code[err.code]} ${err.rawMessage}`);
            return false;
          }
        },
      ];

      const started = Date.now();
      const deadline = started + seconds * 1000;
      let baseline = 0;
      let injectedVisible = 0;
      let faultIndex = 0;
      const injector = (async () => {
        while (Date.now() < deadline - 3_000) {
          await new Promise((r) => setTimeout(r, 2_000));
          const { fault, visible } = faults[
            faultIndex++ % faults.length
          ] as (typeof faults)[number];
          await fetch(`${emulator.url}/__emulator/faults`, {
            method: "POST",
            body: JSON.stringify(fault),
          });
          if (visible) injectedVisible++;
        }
      })();
      const sampler = (async () => {
        await new Promise((r) => setTimeout(r, Math.min(20_000, seconds * 200)));
        baseline = heapAfterGc();
      })();
      await Promise.all([
        injector,
        sampler,
        ...Array.from({ length: workers }, async (_, w) => {
          for (let i = w; Date.now() < deadline; i++) {
            requests++;
            if (await (scenarios[i % scenarios.length] as () => Promise<boolean>)())
              injectedErrors++;
          }
        }),
      ]);
      await fetch(`${emulator.url}/__emulator/faults`, { method: "DELETE" });
      const end = heapAfterGc();
      console.info(
        `soak: ${requests} requests in ${seconds}s, ${injectedVisible} visible faults injected, ${injectedErrors} injected errors seen, heap ${((end - baseline) / 1048576).toFixed(1)} MiB over baseline`,
      );

      expect(unexpected).toEqual([]);
      expect(requests).toBeGreaterThan(seconds * 20);
      // Each visible fault fails at most the one call it hits (a 429 / 503 may also go unseen
      // if the call it hit was a failover-free retry of a read).
      expect(injectedErrors).toBeLessThanOrEqual(injectedVisible);
      expect(injectedErrors).toBeGreaterThan(0);
      // Bounded memory: the heap after GC grew less than 16 MiB over the run.
      expect(end - baseline).toBeLessThan(16 * 1024 * 1024);
      await expect.poll(async () => (await emulator.stats()).openStreams).toBe(0);
    },
    (seconds + 60) * 1000,
  );
});
