import { randomBytes } from "node:crypto";
import { Code, type ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../src/config/index.js";
import { type Demo, demoConfig } from "../src/demo.js";
import { catalog, startEmulator } from "../src/emulator/index.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { RunMode, RunStatus, WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { createObservability } from "../src/observability/index.js";
import { createShiftableClock, type ShiftableClock } from "./support/coze-fixture.js";
import { cozeIdOf, handed } from "./support/handles.js";
import { captureLog, type LogCapture } from "./support/log-capture.js";

// Issue 17: when Coze refuses is_async for the account's plan (6003, coze-api.md §14.1), a
// workflow-async: run is held by the gateway over stream_run, behind the same API.

const otherKey = "other-key-0123456789abcdef";
const rawKey = "raw-ids-key-0123456789abcd";
const asyncModel = `workflow-async:${catalog.workflows.slowAsync}`;
const modelQuery = `model=${encodeURIComponent(asyncModel)}`;
type Extra = Record<string, unknown>;

let demo: Demo;
let gateway: Gateway;
let logs: LogCapture;
let clock: ShiftableClock;

beforeAll(async () => {
  // One clock for the gateway and the emulator, so that moving it past the refusal memory
  // keeps JWTs and tokens valid.
  clock = createShiftableClock();
  const emulator = await startEmulator({ now: clock.now, timing: { deltaMs: 0 } });
  const app = await emulator.createApp();
  const apiKey = `demo-${randomBytes(18).toString("hex")}`;
  const config = demoConfig({
    port: 0,
    pollIntervalMs: 20,
    emulatorUrl: emulator.url,
    app,
    apiKey,
  });
  demo = { emulator, app, config, apiKey, close: () => emulator.close() };
  demo.config.apiKeys.push(
    { name: "other", sha256: hashApiKey(otherKey), models: undefined, rawCozeIds: false },
    { name: "raw", sha256: hashApiKey(rawKey), models: undefined, rawCozeIds: true },
  );
  logs = captureLog();
  gateway = await startGateway({
    config: demo.config,
    clock,
    observability: createObservability({ destination: logs.out }),
  });
});
afterAll(async () => {
  await gateway?.close();
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

function transport(kind: "grpc" | "connect", key = demo.apiKey, url = gateway.url) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
  return kind === "grpc"
    ? createGrpcTransport({ baseUrl: url, interceptors: [auth] })
    : createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [auth] });
}
const workflows = (kind: "grpc" | "connect" = "grpc", key = demo.apiKey) =>
  createClient(WorkflowService, transport(kind, key));
const headers = (key = demo.apiKey) => ({
  authorization: `Bearer ${key}`,
  "content-type": "application/json",
});
const lookup = (id: string, query = modelQuery, key = demo.apiKey, url = gateway.url) =>
  fetch(`${url}/v1/workflow_runs/${encodeURIComponent(id)}?${query}`, { headers: headers(key) });
const calls = () => demo.emulator.stats().calls;

/** The SSE events of a body: `data:` payloads parsed, comments kept as text. */
function sse(text: string): { data: Extra[]; comments: string[]; done: boolean } {
  const data: Extra[] = [];
  const comments: string[] = [];
  let done = false;
  for (const b of text.split("\n\n").filter((x) => x !== "")) {
    if (b.startsWith(":")) comments.push(b);
    else if (b === "data: [DONE]") done = true;
    else data.push(JSON.parse(b.slice("data: ".length)));
  }
  return { data, comments, done };
}

describe("a workflow-async run on a plan without is_async", () => {
  it("is RUNNING at once, watched, read and looked up like Coze's, and says so once in the log", async () => {
    const wf = workflows();
    let announced = "";
    const started = await wf.runWorkflow(
      { model: asyncModel, mode: RunMode.ASYNC, parameters: { input: "held", run_ms: 1500 } },
      { onHeader: (h) => (announced = h.get("x-coze-execute-id") ?? "") },
    );
    expect(started.status).toBe(RunStatus.RUNNING);
    expect(started.executeId).toMatch(handed);
    expect(announced).toBe(started.executeId);
    // The gateway's own id: 19 digits starting with 0, which no Coze id does.
    expect(cozeIdOf(started.executeId)).toMatch(/^0\d{18}$/);
    expect(calls()["workflow.run"]).toBe(1);
    expect(calls()["workflow.stream_run"]).toBe(1);

    const running = await wf.getWorkflowRun({ model: asyncModel, executeId: started.executeId });
    expect(running.status).toBe(RunStatus.RUNNING);

    const events = [];
    for await (const e of wf.watchWorkflow({ model: asyncModel, executeId: started.executeId })) {
      events.push(e.event);
    }
    const progress = events.filter((e) => e.case === "progress").map((e) => e.value);
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.every((p) => p.executeId === started.executeId)).toBe(true);
    expect(progress.at(-1)?.status).toBe(RunStatus.SUCCEEDED);
    const result = events.at(-1);
    expect(result?.case).toBe("result");
    if (result?.case !== "result") return;
    expect(result.value.executeId).toBe(started.executeId);
    expect(JSON.parse(result.value.outputJson)).toMatchObject({ output: "held" });

    const read = await wf.getWorkflowRun({ model: asyncModel, executeId: started.executeId });
    expect(read).toMatchObject({ status: RunStatus.SUCCEEDED, executeId: started.executeId });
    expect(JSON.parse(read.outputJson)).toMatchObject({ output: "held" });
    expect(read.createTime).toBeDefined();
    // Nothing was polled at Coze: the gateway held the run itself.
    expect(calls()["workflow.history"]).toBeUndefined();

    const rest = (await (await lookup(started.executeId)).json()) as Extra;
    expect(rest).toMatchObject({
      object: "workflow.run",
      execute_id: started.executeId,
      status: "succeeded",
    });
    expect(JSON.parse(rest.content as string)).toMatchObject({ output: "held" });

    await new Promise((r) => setImmediate(r));
    const warned = logs.lines().filter((l) => String(l.msg).includes("is_async"));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: "warn", channel: "demo", cozeCode: 6003 });
  });

  it("goes straight to the fallback while the refusal is remembered, asks Coze again after 10 minutes", async () => {
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: demo.apiKey });
    const ask = async (input: string) => {
      const r = await client.chat.completions.create({
        model: `workflow-async:${catalog.workflows.echo}`,
        messages: [{ role: "user", content: input }],
      } as never);
      return r as unknown as Extra & { choices: { message: { content: string } }[] };
    };
    const warnings = () => logs.lines().filter((l) => String(l.msg).includes("is_async")).length;
    // Past any refusal an earlier test left remembered.
    clock.shift(600_001);
    // The output's single string field is the content (as for every workflow).
    const first = await ask("one");
    expect(first.choices[0]?.message.content).toBe("one");
    expect(cozeIdOf(first.execute_id as string)).toMatch(/^0/);
    expect([calls()["workflow.run"], calls()["workflow.stream_run"]]).toEqual([1, 1]);
    const second = await ask("two");
    expect(second.choices[0]?.message.content).toBe("two");
    // Remembered: no start Coze would refuse again.
    expect([calls()["workflow.run"], calls()["workflow.stream_run"]]).toEqual([1, 2]);

    clock.shift(600_001);
    await ask("three");
    expect([calls()["workflow.run"], calls()["workflow.stream_run"]]).toEqual([2, 3]);

    // The plan is upgraded at Coze: after the memory period, runs are Coze's async runs again.
    demo.emulator.faults.clear();
    clock.shift(600_001);
    const upgraded = await ask("four");
    expect(upgraded.choices[0]?.message.content).toBe("four");
    expect(cozeIdOf(upgraded.execute_id as string)).toMatch(/^[1-9]\d{18}$/);
    expect([calls()["workflow.run"], calls()["workflow.stream_run"]]).toEqual([3, 3]);
    expect(demo.emulator.stats().polls[cozeIdOf(upgraded.execute_id as string)]).toBeGreaterThan(0);
    await new Promise((r) => setImmediate(r));
    // One warning for the channel in this process, however many runs fell back.
    expect(warnings()).toBe(1);

    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(metrics).toMatch(
      /coze_gateway_workflow_async_fallbacks_total\{channel="demo",reason="refused"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /coze_gateway_workflow_async_fallbacks_total\{channel="demo",reason="remembered"\} [1-9]/,
    );
    expect(metrics).toContain("coze_gateway_held_runs 0");
  });

  it("streams over REST like Coze's: the id in the header and first chunk, : progress, the output", async () => {
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({
        model: asyncModel,
        stream: true,
        messages: [{ role: "user", content: "x" }],
        parameters: { input: "streamed", run_ms: 200 },
      }),
    });
    const id = res.headers.get("x-coze-execute-id") ?? "";
    expect(cozeIdOf(id)).toMatch(/^0/);
    const { data, comments, done } = sse(await res.text());
    expect(data[0]).toMatchObject({ execute_id: id });
    expect(comments.some((c) => c.startsWith(": progress "))).toBe(true);
    const text = data
      .map((d) => ((d.choices as Extra[])[0]?.delta as Extra)?.content ?? "")
      .join("");
    expect(JSON.parse(text)).toMatchObject({ output: "streamed" });
    expect(data.at(-1)).toMatchObject({ execute_id: id, choices: [{ finish_reason: "stop" }] });
    expect(done).toBe(true);
  });

  it("starts over Connect with WatchWorkflow: a first progress event names the run", async () => {
    const events = [];
    for await (const e of workflows("connect").watchWorkflow({
      model: asyncModel,
      parameters: { input: "connect", run_ms: 50 },
    })) {
      events.push(e.event);
    }
    const first = events[0];
    expect(first?.case === "progress" && first.value.polls).toBe(0);
    const id = first?.case === "progress" ? first.value.executeId : "";
    expect(cozeIdOf(id)).toMatch(/^0/);
    const last = events.at(-1);
    expect(last?.case === "result" && JSON.parse(last.value.outputJson)).toMatchObject({
      output: "connect",
    });
  });

  it("answers RUN_MODE_ASYNC_WAIT (gRPC's default for workflow-async:) with the output", async () => {
    const done = await workflows().runWorkflow({
      model: asyncModel,
      parameters: { input: "w", run_ms: 50 },
    });
    expect(done.status).toBe(RunStatus.SUCCEEDED);
    expect(JSON.parse(done.outputJson)).toMatchObject({ output: "w" });
    expect(cozeIdOf(done.executeId)).toMatch(/^0/);
  });

  it("goes on when its caller leaves, and can be read afterwards", async () => {
    const abort = new AbortController();
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({
        model: asyncModel,
        stream: true,
        messages: [{ role: "user", content: "x" }],
        parameters: { input: "left", run_ms: 300 },
      }),
      signal: abort.signal,
    });
    const id = res.headers.get("x-coze-execute-id") ?? "";
    abort.abort();
    await expect
      .poll(async () => ((await (await lookup(id)).json()) as Extra).status, { timeout: 5_000 })
      .toBe("succeeded");
  });

  it("is found only by the key that started it, with its workflow; never by a forged or raw id", async () => {
    const { executeId: id } = await workflows().runWorkflow({
      model: asyncModel,
      mode: RunMode.ASYNC,
      parameters: { input: "mine", run_ms: 50 },
    });
    const raw = cozeIdOf(id);
    const tag = id.slice(id.indexOf(".") + 1);
    const forged = `${raw}.${tag[0] === "A" ? "B" : "A"}${tag.slice(1)}`;
    const echoModel = `workflow-async:${catalog.workflows.echo}`;
    const cases: [string, string, string, string][] = [
      ["another key's", id, otherKey, asyncModel],
      ["forged", forged, demo.apiKey, asyncModel],
      ["raw, by a key allowed raw ids", raw, rawKey, asyncModel],
      ["another workflow's", id, demo.apiKey, echoModel],
    ];
    for (const [what, handle, key, model] of cases) {
      const query = `model=${encodeURIComponent(model)}`;
      for (const q of [query, `${query}&stream=true`]) {
        const res = await lookup(handle, q, key);
        expect(res.status, what).toBe(404);
        expect(((await res.json()) as { error: Extra }).error.param, what).toBe("execute_id");
      }
      const err = await workflows("grpc", key)
        .getWorkflowRun({ model, executeId: handle })
        .catch((e: unknown) => e);
      expect((err as ConnectError).code, what).toBe(Code.NotFound);
    }
    expect(calls()["workflow.history"]).toBeUndefined();
    // The owner still reads it.
    await expect
      .poll(async () => ((await (await lookup(id)).json()) as Extra).status, { timeout: 5_000 })
      .toBe("succeeded");
  });

  it("names itself when it fails, with Coze's code in the run", async () => {
    const model = `workflow-async:${catalog.workflows.failing}`;
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ model, messages: [{ role: "user", content: "x" }] }),
    });
    expect(res.status).toBe(502);
    const { error } = (await res.json()) as { error: Extra };
    expect(cozeIdOf(error.execute_id as string)).toMatch(/^0/);
    const run = (await (
      await lookup(error.execute_id as string, `model=${encodeURIComponent(model)}`)
    ).json()) as Extra;
    expect(run).toMatchObject({ status: "failed", error_code: "720702017" });
  });

  it("stops at an interrupt with the question, and is resumed like a streamed run", async () => {
    const model = `workflow-async:${catalog.workflows.interrupt}`;
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: demo.apiKey });
    const asked = (await client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "go" }],
      parameters: { data_shape: "json" },
    } as never)) as unknown as Extra & { choices: { message: { content: string } }[] };
    expect(asked.choices[0]?.message.content).toBe("Which city?");
    const interrupt = asked.interrupt as Extra;
    expect(interrupt).toMatchObject({ type: 2, question: "Which city?", content_type: "text" });
    const run = (await (
      await lookup(asked.execute_id as string, `model=${encodeURIComponent(model)}`)
    ).json()) as Extra;
    expect(run.status).toBe("interrupted");
    // The lookup says what the run waits on, as the completion did.
    expect(run.interrupt).toEqual(interrupt);
    const answered = (await client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "Lima" }],
      event_id: interrupt.event_id,
      interrupt_type: interrupt.type,
    } as never)) as unknown as { choices: { message: { content: string } }[] };
    expect(answered.choices[0]?.message.content).toBe("You answered: Lima");
    expect(calls()["workflow.stream_resume"]).toBe(1);
  });
});
