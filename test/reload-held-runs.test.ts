import { randomBytes } from "node:crypto";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type GatewayConfig, hashApiKey } from "../src/config/index.js";
import { demoConfig } from "../src/demo.js";
import { catalog, type Emulator, startEmulator } from "../src/emulator/index.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { RunMode, RunStatus, WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { createObservability } from "../src/observability/index.js";
import { captureLog, type LogCapture } from "./support/log-capture.js";

// Issue 15 with issue 17's held runs: a run the gateway holds for a plan without is_async is the
// process's, not a config's. A reload keeps it readable and watchable under its id, and the
// warning about the plan stays once per channel and process.

const asyncModel = `workflow-async:${catalog.workflows.slowAsync}`;
let emulator: Emulator;
let config: GatewayConfig;
let gateway: Gateway;
let logs: LogCapture;
const apiKey = `demo-${randomBytes(18).toString("hex")}`;

beforeAll(async () => {
  emulator = await startEmulator({ timing: { deltaMs: 0 } });
  const app = await emulator.createApp();
  config = demoConfig({ port: 0, pollIntervalMs: 20, emulatorUrl: emulator.url, app, apiKey });
  emulator.faults.inject({ kind: "free_plan", clientId: app.clientId });
  logs = captureLog();
  gateway = await startGateway({
    config,
    observability: createObservability({ destination: logs.out }),
  });
});
afterAll(async () => {
  await gateway?.close();
  await emulator?.close();
});

const auth: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${apiKey}`);
  return next(req);
};
const workflows = () =>
  createClient(
    WorkflowService,
    createGrpcTransport({ baseUrl: gateway.url, interceptors: [auth] }),
  );

/** `config` with one more key: every channel is kept, the keys and services are new. */
function withAnotherKey(): GatewayConfig {
  return {
    ...config,
    apiKeys: [
      ...config.apiKeys,
      {
        name: `k${randomBytes(4).toString("hex")}`,
        sha256: hashApiKey(randomBytes(16).toString("hex")),
        models: undefined,
        rawCozeIds: false,
      },
    ],
  };
}

it("keeps a held run readable and watchable across a reload, and warns of the plan once", async () => {
  const wf = workflows();
  const started = await wf.runWorkflow({
    model: asyncModel,
    mode: RunMode.ASYNC,
    parameters: { input: "held", run_ms: 800 },
  });
  expect(started.status).toBe(RunStatus.RUNNING);
  expect((await gateway.reload(async () => withAnotherKey())).outcome).toBe("applied");

  // The run started under the old config, read and watched under the new one.
  const running = await wf.getWorkflowRun({ model: asyncModel, executeId: started.executeId });
  expect(running.status).toBe(RunStatus.RUNNING);
  const events = [];
  for await (const e of wf.watchWorkflow({ model: asyncModel, executeId: started.executeId })) {
    events.push(e.event);
  }
  const result = events.at(-1);
  expect(result?.case).toBe("result");
  const read = await wf.getWorkflowRun({ model: asyncModel, executeId: started.executeId });
  expect(read.status).toBe(RunStatus.SUCCEEDED);
  expect(JSON.parse(read.outputJson)).toMatchObject({ output: "held" });

  // Another held run under the new config: counted, but the channel was already warned of.
  const again = await wf.runWorkflow({
    model: asyncModel,
    mode: RunMode.ASYNC,
    parameters: { input: "again", run_ms: 0 },
  });
  expect(again.status).toBe(RunStatus.RUNNING);
  await expect
    .poll(
      async () =>
        (await wf.getWorkflowRun({ model: asyncModel, executeId: again.executeId })).status,
    )
    .toBe(RunStatus.SUCCEEDED);
  const warned = logs.lines().filter((l) => String(l.msg).includes("is_async"));
  expect(warned).toHaveLength(1);
  const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
  expect(metrics).toMatch(
    /coze_gateway_workflow_async_fallbacks_total\{channel="demo",reason="refused"\} 2\n/,
  );
  expect(metrics).toContain("coze_gateway_held_runs 0");
});
