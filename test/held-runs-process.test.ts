import type { ConnectError, Interceptor } from "@connectrpc/connect";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Demo, startDemo } from "../src/demo.js";
import { catalog } from "../src/emulator/index.js";
import { startGateway } from "../src/gateway.js";
import { RunMode, RunStatus, WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { cozeIdOf } from "./support/handles.js";

// Issue 17: a run the gateway holds because Coze refused is_async for the plan
// (async-fallback.test.ts) lives in the gateway process: its words when the gateway stops
// waiting or shuts down, its slot of the channel's cap, and a restart.

const asyncModel = `workflow-async:${catalog.workflows.slowAsync}`;
const modelQuery = `model=${encodeURIComponent(asyncModel)}`;
type Extra = Record<string, unknown>;

let demo: Demo;

beforeAll(async () => {
  demo = await startDemo({ port: 0, deltaMs: 0, pollIntervalMs: 20 });
});
afterAll(async () => {
  await demo?.close();
});
beforeEach(() => {
  demo.emulator.reset();
  demo.emulator.faults.inject({ kind: "free_plan", clientId: demo.app.clientId });
});
afterEach(async () => {
  // Every held run of a test has ended: no stream is left open at the emulator.
  await expect.poll(() => demo.emulator.stats().openStreams, { timeout: 5_000 }).toBe(0);
});

function transport(url: string) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${demo.apiKey}`);
    return next(req);
  };
  return createGrpcTransport({ baseUrl: url, interceptors: [auth] });
}
const headers = () => ({
  authorization: `Bearer ${demo.apiKey}`,
  "content-type": "application/json",
});
const lookup = (id: string, url: string) =>
  fetch(`${url}/v1/workflow_runs/${encodeURIComponent(id)}?${modelQuery}`, { headers: headers() });
const calls = () => demo.emulator.stats().calls;

/** The `data:` payloads of an SSE body, parsed. */
function sse(text: string): { data: Extra[] } {
  const data: Extra[] = [];
  for (const b of text.split("\n\n")) {
    if (b.startsWith("data: {")) data.push(JSON.parse(b.slice("data: ".length)));
  }
  return { data };
}

describe("a held run and the gateway process", () => {
  it("is lost when the gateway restarts: its id is a clear 404, and Coze is not asked", async () => {
    const before = await startGateway({ config: demo.config });
    const own = await startGateway({ config: demo.config });
    try {
      const { executeId: id } = await createClient(
        WorkflowService,
        transport(before.url),
      ).runWorkflow({
        model: asyncModel,
        mode: RunMode.ASYNC,
        parameters: { input: "before", run_ms: 50 },
      });
      // `own` is another process as far as held runs go: it never held this one.
      const res = await lookup(id, own.url);
      expect(res.status).toBe(404);
      const { error } = (await res.json()) as { error: Extra };
      expect(error.message).toContain("lost when the gateway restarts");
      const err = (await createClient(WorkflowService, transport(own.url))
        .getWorkflowRun({ model: asyncModel, executeId: id })
        .catch((e: unknown) => e)) as ConnectError;
      expect(err.code).toBe(Code.NotFound);
      expect(calls()["workflow.history"]).toBeUndefined();
    } finally {
      await Promise.all([before.close(), own.close()]);
    }
  });

  it("holds a slot of its channel's max_concurrent while its stream is open, and gives it back", async () => {
    const config = {
      ...demo.config,
      channels: demo.config.channels.map((c) => ({
        ...c,
        limits: { maxConcurrent: 1, queue: 0, queueTimeoutMs: 30_000 },
      })),
    };
    const own = await startGateway({ config });
    try {
      const wf = createClient(WorkflowService, transport(own.url));
      const first = await wf.runWorkflow({
        model: asyncModel,
        mode: RunMode.ASYNC,
        parameters: { input: "one", run_ms: 400 },
      });
      expect(cozeIdOf(first.executeId)).toMatch(/^0/);
      const busy = (await wf
        .runWorkflow({ model: asyncModel, mode: RunMode.ASYNC, parameters: { input: "two" } })
        .catch((e: unknown) => e)) as ConnectError;
      expect(busy.code).toBe(Code.ResourceExhausted);
      expect(busy.metadata.get("x-gateway-error")).toBe("channel_busy");
      expect(calls()["workflow.stream_run"]).toBe(1);
      // The run ends at Coze, its stream closes, and the slot is free again.
      await expect
        .poll(
          async () => ((await (await lookup(first.executeId, own.url)).json()) as Extra).status,
          { timeout: 5_000 },
        )
        .toBe("succeeded");
      await expect.poll(() => demo.emulator.stats().openStreams, { timeout: 5_000 }).toBe(0);
      const again = await wf.runWorkflow({
        model: asyncModel,
        parameters: { input: "three", run_ms: 10 },
      });
      expect(again.status).toBe(RunStatus.SUCCEEDED);
    } finally {
      await own.close();
    }
  });

  it("says a held run it stopped waiting for goes on in the gateway, not at Coze", async () => {
    const config = {
      ...demo.config,
      channels: demo.config.channels.map((c) => ({
        ...c,
        polling: { ...c.polling, maxPolls: 2 },
      })),
    };
    const own = await startGateway({ config });
    try {
      const parameters = { input: "long", run_ms: 120_000 };
      const res = await fetch(`${own.url}/v1/chat/completions`, {
        method: "POST",
        headers: headers(),
        body: JSON.stringify({
          model: asyncModel,
          messages: [{ role: "user", content: "x" }],
          parameters,
        }),
      });
      expect(res.status).toBe(504);
      const { error } = (await res.json()) as { error: Extra };
      const id = error.execute_id as string;
      expect(cozeIdOf(id)).toMatch(/^0\d{18}$/);
      const url = `/v1/workflow_runs/${encodeURIComponent(id)}?${modelQuery}`;
      expect(error).toMatchObject({
        code: "still_running",
        message: `workflow.watch: still running in the gateway when it stopped waiting; the workflow run goes on in the gateway, which holds it (it is lost if the gateway stops): read it with GET ${url}, or re-attach with GET ${url}&stream=true`,
      });
      // It does go on: the lookup reads it running.
      const read = (await (await lookup(id, own.url)).json()) as Extra;
      expect(read.status).toBe("running");

      const err = (await createClient(WorkflowService, transport(own.url))
        .runWorkflow({ model: asyncModel, parameters })
        .catch((e: unknown) => e)) as ConnectError;
      expect(err.code).toBe(Code.DeadlineExceeded);
      const grpcId = err.metadata.get("x-coze-execute-id");
      expect(err.rawMessage).toBe(
        `workflow.watch: still running in the gateway when it stopped waiting; the workflow run goes on in the gateway, which holds it (it is lost if the gateway stops): pass execute_id ${grpcId} to WorkflowService.WatchWorkflow or WorkflowService.GetWorkflowRun`,
      );
      expect(calls()["workflow.history"]).toBeUndefined();
    } finally {
      await own.close();
    }
  });

  it("says at shutdown that a held run is lost, over REST and gRPC", async () => {
    const own = await startGateway({ config: demo.config });
    const parameters = { input: "long", run_ms: 120_000 };
    const res = await fetch(`${own.url}/v1/chat/completions`, {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({
        model: asyncModel,
        stream: true,
        messages: [{ role: "user", content: "x" }],
        parameters,
      }),
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    const watched: string[] = [];
    const watch = (async () => {
      const wf = createClient(WorkflowService, transport(own.url));
      for await (const ev of wf.watchWorkflow({ model: asyncModel, parameters })) {
        if (ev.event.case === "progress") watched.push(ev.event.value.executeId);
      }
    })().catch((e: unknown) => e);
    await expect.poll(() => watched.length, { timeout: 5_000 }).toBeGreaterThan(0);
    const closed = own.close();
    for (let i = 0; i < 1_000; i++) {
      const r = await reader.read();
      if (r.done) break;
      text += new TextDecoder().decode(r.value);
    }
    const grpcErr = (await watch) as ConnectError;
    await closed;
    const lost =
      "server is shutting down; the workflow run was held by this gateway process and is lost at shutdown: start it again";
    const { data } = sse(text);
    expect(cozeIdOf(data[0]?.execute_id as string)).toMatch(/^0\d{18}$/);
    expect(data.at(-1)?.error).toMatchObject({ code: "unavailable", message: lost });
    expect(grpcErr.code).toBe(Code.Unavailable);
    expect(cozeIdOf(grpcErr.metadata.get("x-coze-execute-id") ?? "")).toMatch(/^0\d{18}$/);
    expect(grpcErr.rawMessage).toBe(lost);
  });

  it("does not hold up a shutdown: the run ends, and close() returns", async () => {
    const own = await startGateway({ config: demo.config });
    const wf = createClient(WorkflowService, transport(own.url));
    await wf.runWorkflow({
      model: asyncModel,
      mode: RunMode.ASYNC,
      parameters: { input: "long", run_ms: 120_000 },
    });
    expect(demo.emulator.stats().openStreams).toBe(1);
    const started = Date.now();
    await own.close();
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
