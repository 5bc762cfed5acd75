import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { catalog } from "../src/emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { RunMode, WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import {
  type OtlpReceiver,
  type ReceivedSpan,
  startOtlpReceiver,
} from "./support/otlp-receiver.js";
import { startTracedGateway, type TracedGateway, tracingConfig } from "./support/traced-gateway.js";

// Tracing on: a local OTLP receiver (node:http on 127.0.0.1) gets the spans of REST and gRPC
// chats and of an async workflow run, each under the caller's trace, with the right parents, the
// Coze step and log id of each call, the token fetch of a cold cache and every poll; Coze gets a
// traceparent naming the span of its call. No span holds a key, a token or a body; a collector
// that is down never fails a request.

const SERVER = 2;
const CLIENT = 3;

let gw: TracedGateway | undefined;
let receiver: OtlpReceiver | undefined;

afterEach(async () => {
  await gw?.close();
  await receiver?.close();
  gw = undefined;
  receiver = undefined;
});

/** A caller's traceparent for trace `n` (sampled), and its parent span id. */
function callerTrace(n: number) {
  const traceId = `${n}`.padStart(2, "0").repeat(16);
  const parentId = "00f067aa0ba902b7";
  return { traceId, parentId, header: `00-${traceId}-${parentId}-01` };
}

function only(spans: ReceivedSpan[], what: string): ReceivedSpan {
  expect(spans, what).toHaveLength(1);
  return spans[0] as ReceivedSpan;
}

/** The spans of one trace: the request's, its stage's, its Coze calls', its token wait's. */
function traceOf(all: ReceivedSpan[], traceId: string) {
  const spans = all.filter((s) => s.traceId === traceId);
  const request = only(
    spans.filter((s) => s.kind === SERVER),
    `the request span of ${traceId}`,
  );
  const stage = only(
    spans.filter((s) => s.parentSpanId === request.spanId),
    `the stage under the request of ${traceId}`,
  );
  const calls = spans.filter((s) => s.kind === CLIENT);
  const tokens = spans.filter((s) => s.name === "coze token");
  return { spans, request, stage, calls, tokens };
}

const secretHeader = "otlp-secret-4f1e2d3c4b5a69788796a5b4c3d2e1f0";
const bodyMarker = "body-marker-5b8e0c1d";

describe("spans over OTLP", () => {
  it("export a REST chat, a gRPC chat and an async workflow run under the callers' traces", async () => {
    receiver = await startOtlpReceiver();
    gw = await startTracedGateway(
      tracingConfig(receiver.url, {
        headers: { "x-collector-key": secretHeader },
        serviceName: "gateway-under-test",
      }),
    );
    const { key } = gw;
    const pem = gw.demo.app.privateKeyPem.split("\n")[1] ?? "";
    const rest = callerTrace(1);
    const grpc = callerTrace(2);
    const run = callerTrace(3);
    const watch = callerTrace(6);

    // 1. REST chat, first of all: the token cache is cold.
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.key, maxRetries: 0 });
    await openai.chat.completions.create(
      { model: "coze-echo", messages: [{ role: "user", content: `hello ${bodyMarker}` }] },
      { headers: { traceparent: rest.header, tracestate: "rojo=1", "x-request-id": "otlp-rest" } },
    );
    // 2. gRPC chat.
    const transport = createGrpcTransport({ baseUrl: gw.url });
    const headers = (trace: string, id: string) => ({
      authorization: `Bearer ${gw?.key}`,
      traceparent: trace,
      "x-request-id": id,
    });
    await createClient(ChatService, transport).chat(
      {
        model: "coze-echo",
        messages: [create(ChatMessageSchema, { role: Role.USER, content: "hi" })],
      },
      { headers: headers(grpc.header, "otlp-grpc") },
    );
    // 3. An async run that ends on its third poll.
    const done = await createClient(WorkflowService, transport).runWorkflow(
      {
        model: `workflow-async:${catalog.workflows.slowAsync}`,
        mode: RunMode.ASYNC_WAIT,
        parameters: { input: "x", polls: 3 },
      },
      { headers: headers(run.header, "otlp-run") },
    );
    expect(done.executeId).not.toBe("");
    // 4. The same watched as a stream: its polls are the shared poll loop's.
    const events = createClient(WorkflowService, transport).watchWorkflow(
      {
        model: `workflow-async:${catalog.workflows.slowAsync}`,
        parameters: { input: "y", polls: 2 },
      },
      { headers: headers(watch.header, "otlp-watch") },
    );
    const kinds: (string | undefined)[] = [];
    for await (const e of events) kinds.push(e.event.case);
    expect(kinds.at(-1)).toBe("result");
    const lines = {
      rest: await gw.requestLine("otlp-rest"),
      grpc: await gw.requestLine("otlp-grpc"),
      run: await gw.requestLine("otlp-run"),
      watch: await gw.requestLine("otlp-watch"),
    };
    const cozeCalls = {
      rest: gw.cozeCalls(lines.rest),
      grpc: gw.cozeCalls(lines.grpc),
      run: gw.cozeCalls(lines.run),
      watch: gw.cozeCalls(lines.watch),
    };
    await gw.close(); // exports what is queued
    gw = undefined;

    const all = receiver.spans();
    expect(receiver.exports.length).toBeGreaterThan(0);
    for (const e of receiver.exports) {
      expect(e.contentType).toBe("application/x-protobuf");
      expect(e.headers["x-collector-key"]).toBe(secretHeader);
    }
    expect(new Set(all.map((s) => s.resource["service.name"]))).toEqual(
      new Set(["gateway-under-test"]),
    );

    for (const [name, caller] of [
      ["rest", rest],
      ["grpc", grpc],
      ["run", run],
      ["watch", watch],
    ] as const) {
      const t = traceOf(all, caller.traceId);
      // The request is a child of the caller's span; the log line names the same trace.
      expect(t.request.parentSpanId, name).toBe(caller.parentId);
      expect(lines[name].traceId, name).toBe(caller.traceId);
      expect(t.request.attributes["gateway.request_id"]).toBe(`otlp-${name}`);
      expect(t.request.attributes["gateway.outcome"]).toBe("ok");
      // Each Coze call is a child of the stage, names its step and log id, and Coze got a
      // traceparent naming exactly that span.
      expect(t.calls.length, name).toBe(cozeCalls[name].length);
      for (const call of t.calls) {
        expect(call.parentSpanId).toBe(t.stage.spanId);
        expect(call.name).toBe(`coze ${call.attributes["coze.step"]}`);
        const received = cozeCalls[name].find((c) => c.logid === call.attributes["coze.logid"]);
        expect(received?.headers.traceparent).toBe(`00-${caller.traceId}-${call.spanId}-01`);
      }
      expect(t.request.attributes["coze.logids"]).toEqual(lines[name].cozeLogIds);
    }

    const r = traceOf(all, rest.traceId);
    expect(r.request.name).toBe("POST /v1/chat/completions");
    expect(r.stage.name).toBe("door POST /v1/chat/completions");
    expect(r.request.attributes).toMatchObject({
      "gateway.caller": "demo",
      "gateway.model": "coze-echo",
      "gateway.channel": "demo",
    });
    expect(r.request.traceState).toBe("rojo=1");
    // The cold cache: the first call waited for a token, a child of that call.
    const token = only(r.tokens, "the token wait of the first request");
    expect(r.calls.map((c) => c.spanId)).toContain(token.parentSpanId);
    for (const c of cozeCalls.rest) expect(c.headers.tracestate).toBe("rojo=1");

    const g = traceOf(all, grpc.traceId);
    expect(g.request.name).toBe("cozegateway.v1.ChatService/Chat");
    expect(g.stage.name).toBe("rpc cozegateway.v1.ChatService/Chat");
    expect(g.tokens).toEqual([]); // the cache is warm now

    const w = traceOf(all, run.traceId);
    expect(w.stage.name).toBe("rpc cozegateway.v1.WorkflowService/RunWorkflow");
    const steps = w.calls.map((c) => c.attributes["coze.step"]);
    expect(steps).toEqual([
      "workflow.start",
      "workflow.history",
      "workflow.history",
      "workflow.history",
    ]);
    const v = traceOf(all, watch.traceId);
    expect(v.stage.name).toBe("rpc cozegateway.v1.WorkflowService/WatchWorkflow");
    expect(v.calls.map((c) => c.attributes["coze.step"])).toEqual([
      "workflow.start",
      "workflow.history",
      "workflow.history",
    ]);

    // No key, token, credential or body in any span.
    const text = Buffer.concat(receiver.exports.map((e) => e.body)).toString("latin1");
    expect(pem.length).toBeGreaterThan(40);
    for (const secret of [key, pem, secretHeader, bodyMarker, "Bearer", "hello", "You said"]) {
      expect(text).not.toContain(secret);
    }
    // Nothing shaped like a JWT or an access token.
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}|czs_|pat_/);
    if (process.env.DUMP_SPANS) console.log(JSON.stringify(all, null, 1));
  });

  it("export JSON, sample new traces by sample_ratio, and follow a caller's sampled flag", async () => {
    receiver = await startOtlpReceiver();
    gw = await startTracedGateway(
      tracingConfig(receiver.url, { protocol: "http/json", sampleRatio: 0 }),
    );
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.key, maxRetries: 0 });
    const ask = (id: string, extra: Record<string, string>) =>
      openai.chat.completions.create(
        { model: "coze-echo", messages: [{ role: "user", content: "hi" }] },
        { headers: { "x-request-id": id, ...extra } },
      );
    const sampled = callerTrace(4);
    await ask("json-none", {});
    await ask("json-sampled", { traceparent: sampled.header });
    const unsampledLine = await gw.requestLine("json-none");
    const sampledLine = await gw.requestLine("json-sampled");
    const unsampledCalls = gw.cozeCalls(unsampledLine);
    await gw.close();
    gw = undefined;

    // Not recorded, but traced all the same: a trace id in the line, a traceparent to Coze.
    const ours = unsampledLine.traceId as string;
    expect(ours).toMatch(/^[0-9a-f]{32}$/);
    for (const c of unsampledCalls) {
      expect(c.headers.traceparent).toMatch(new RegExp(`^00-${ours}-[0-9a-f]{16}-00$`));
    }
    const all = receiver.spans();
    expect(all.filter((s) => s.traceId === ours)).toEqual([]);
    expect(receiver.exports.every((e) => e.contentType === "application/json")).toBe(true);
    expect(sampledLine.traceId).toBe(sampled.traceId);
    const t = traceOf(all, sampled.traceId);
    expect(t.request.parentSpanId).toBe(sampled.parentId);
    expect(t.calls.length).toBeGreaterThan(0);
  });
});

describe("discovery's background lists", () => {
  it("are one trace per refresh, each page a Coze call whose traceparent names its span", async () => {
    receiver = await startOtlpReceiver();
    gw = await startTracedGateway(tracingConfig(receiver.url));
    const lists = gw.demo.emulator
      .requests()
      .filter((r) => r.endpoint === "bots.list" || r.endpoint === "workflows.list");
    await gw.close();
    gw = undefined;

    const all = receiver.spans();
    const refresh = only(
      all.filter((s) => s.name === "discovery refresh"),
      "the demo channel's first refresh",
    );
    expect(refresh.parentSpanId).toBe("");
    expect(refresh.attributes["gateway.channel"]).toBe("demo");
    expect(refresh.status.code).not.toBe(2);
    const calls = all.filter((s) => s.parentSpanId === refresh.spanId && s.kind === CLIENT);
    // Bots, workflows and chatflows, a page each at least.
    expect(calls.map((c) => c.attributes["coze.step"])).toEqual(
      expect.arrayContaining(["bots.list", "workflows.list"]),
    );
    expect(calls.length).toBe(lists.length);
    for (const call of calls) {
      const received = lists.find((r) => r.logid === call.attributes["coze.logid"]);
      expect(received?.headers.traceparent).toBe(`00-${refresh.traceId}-${call.spanId}-01`);
    }
  });

  it("send no traceparent and make no span when sample_ratio leaves them out", async () => {
    receiver = await startOtlpReceiver();
    gw = await startTracedGateway(tracingConfig(receiver.url, { sampleRatio: 0 }));
    const lists = gw.demo.emulator
      .requests()
      .filter((r) => r.endpoint === "bots.list" || r.endpoint === "workflows.list");
    await gw.close();
    gw = undefined;
    expect(lists.length).toBeGreaterThanOrEqual(3);
    for (const r of lists) expect(r.headers.traceparent).toBeUndefined();
    expect(receiver.spans().filter((s) => s.name.startsWith("discovery"))).toEqual([]);
  });
});

describe("a collector that is down", () => {
  it("never fails a request: one warning, spans dropped from a bounded queue, then back", async () => {
    receiver = await startOtlpReceiver();
    receiver.mode = "down";
    gw = await startTracedGateway(
      tracingConfig(receiver.url, {
        headers: { authorization: `Bearer ${secretHeader}` },
        maxQueueSpans: 16,
        exportTimeoutMs: 1000,
      }),
    );
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.key, maxRetries: 0 });
    let n = 0;
    const ask = () =>
      openai.chat.completions.create(
        { model: "coze-echo", messages: [{ role: "user", content: "hi" }] },
        { headers: { "x-request-id": `down-${++n}` } },
      );
    const warnings = () =>
      (gw?.logs.lines() ?? []).filter((l) => String(l.msg).includes("span export failed"));
    // Far more spans than the queue holds, while every export fails.
    for (let round = 0; round < 5; round++) {
      const answers = await Promise.all(Array.from({ length: 10 }, ask));
      expect(answers.every((a) => a.choices[0]?.message.content)).toBe(true);
    }
    for (let waited = 0; warnings().length === 0 && waited < 10_000; waited += 50) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (let round = 0; round < 3; round++) await Promise.all(Array.from({ length: 10 }, ask));
    await new Promise((r) => setTimeout(r, 1500)); // another batch fails meanwhile
    // Several exports failed (each tried again within the export timeout): one warning.
    expect(receiver.refused).toBeGreaterThan(2);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ level: "warn", endpoint: receiver.url });
    expect(gw.logs.text()).not.toContain(secretHeader);

    // Back up: the next exports succeed, it says so once, and new spans arrive.
    const madeWhileDown = n;
    receiver.mode = "ok";
    const later = callerTrace(5);
    const recovered = () =>
      (gw?.logs.lines() ?? []).filter((l) => l.msg === "tracing: span export works again");
    for (let waited = 0; recovered().length === 0 && waited < 10_000; waited += 100) {
      await ask();
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(recovered()).toHaveLength(1);
    await openai.chat.completions.create(
      { model: "coze-echo", messages: [{ role: "user", content: "hi" }] },
      { headers: { traceparent: later.header } },
    );
    const started = Date.now();
    await gw.close();
    gw = undefined;
    expect(Date.now() - started).toBeLessThan(3000);
    expect(receiver.spans().some((s) => s.traceId === later.traceId)).toBe(true);
    // The queue is bounded: of the requests made while it was down, at most the queue's worth
    // and the batch being tried when it came back reached it.
    const downIds = receiver
      .spans()
      .map((s) => Number(String(s.attributes["gateway.request_id"] ?? "").slice(5)))
      .filter((i) => i > 0 && i <= madeWhileDown);
    expect(madeWhileDown).toBe(80);
    expect(downIds.length).toBeLessThanOrEqual(2 * 16);
  });
});
