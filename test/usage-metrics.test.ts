import { create } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashApiKey } from "../src/config/index.js";
import { type Demo, demoModels, startDemo } from "../src/demo.js";
import { catalog } from "../src/emulator/index.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { RunMode, WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { createObservability } from "../src/observability/index.js";
import { captureLog, type LogCapture } from "./support/log-capture.js";
import { startUsageTap, type UsageTap } from "./support/usage-tap.js";

// Issue 15 "Usage" and issue 16 "Operators": every request's line carries the key name, model,
// kind, channel, Coze usage, outcome and reason, and the per-key counters add up to exactly the
// usage the emulator reported, over every protocol, streamed or not.

/** An async run of the echo workflow: a few polls. */
const asyncEcho = `workflow-async:${catalog.workflows.echo}`;
const keyB = "sk-usage-team-b-0123456789abcdef";
const keyLimited = "sk-usage-limited-0123456789abcdef";
let demo: Demo;
let tap: UsageTap;
let gateway: Gateway;
let log: LogCapture;

beforeAll(async () => {
  demo = await startDemo({ port: 0, deltaMs: 0, pollIntervalMs: 10 });
  // Chats and runs go through the tap; tokens straight to the emulator (the JWT audience).
  tap = await startUsageTap(demo.emulator.url);
  const [channel] = demo.config.channels;
  if (channel === undefined) throw new Error("the demo has a channel");
  (channel as { baseUrl: string }).baseUrl = tap.url;
  demo.config.apiKeys.push(
    { name: "team-b", sha256: hashApiKey(keyB), models: undefined, rawCozeIds: false },
    {
      name: "limited",
      sha256: hashApiKey(keyLimited),
      models: [demoModels.bot],
      rawCozeIds: false,
    },
  );
  log = captureLog();
  gateway = await startGateway({
    config: demo.config,
    observability: createObservability({ destination: log.out }),
  });
});
afterAll(async () => {
  await gateway?.close();
  await tap?.close();
  await demo?.close();
});

const auth =
  (key: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };

function clients(transport: Transport): {
  chat: Client<typeof ChatService>;
  workflow: Client<typeof WorkflowService>;
} {
  return {
    chat: createClient(ChatService, transport),
    workflow: createClient(WorkflowService, transport),
  };
}

const user = (content: string) => create(ChatMessageSchema, { role: Role.USER, content });

/** The request lines written so far. */
async function requestLines(): Promise<Record<string, unknown>[]> {
  await new Promise((r) => setImmediate(r));
  return log.lines().filter((l) => l.msg === "request");
}

async function scrape(): Promise<string> {
  return (await fetch(`${gateway.url}/metrics`)).text();
}

/** The sum of a metric's samples whose labels include all of `labels`. */
function sum(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const open = line.indexOf("{");
    const close = line.lastIndexOf("}");
    const set = line.slice(open + 1, close);
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) {
      total += Number(line.slice(close + 1));
    }
  }
  return total;
}

describe("usage accounting", () => {
  it("counts per key and model exactly the usage Coze reported, over REST, gRPC and Connect", async () => {
    const openai = (key: string) => new OpenAI({ apiKey: key, baseURL: `${gateway.url}/v1` });
    const a = openai(demo.apiKey);
    const b = openai(keyB);
    const messages = [{ role: "user" as const, content: "count these tokens please" }];
    // REST: chat and workflow, streamed and not, from two keys.
    await a.chat.completions.create({ model: demoModels.bot, messages });
    for await (const _ of await b.chat.completions.create({
      model: demoModels.bot,
      messages,
      stream: true,
      stream_options: { include_usage: true },
    }));
    await b.chat.completions.create({ model: demoModels.workflow, messages });
    for await (const _ of await a.chat.completions.create({
      model: demoModels.workflow,
      messages,
      stream: true,
    }));
    // gRPC and Connect: the same services.
    const grpc = clients(createGrpcTransport({ baseUrl: gateway.url, interceptors: [auth(keyB)] }));
    const connect = clients(
      createConnectTransport({
        baseUrl: gateway.url,
        httpVersion: "1.1",
        interceptors: [auth(demo.apiKey)],
      }),
    );
    await grpc.chat.chat({ model: demoModels.reasoning, messages: [user("think about it")] });
    for await (const _ of connect.chat.chatStream({
      model: demoModels.bot,
      messages: [user("stream me")],
    }));
    await connect.workflow.runWorkflow({
      model: demoModels.workflow,
      parameters: { input: "run me" },
    });
    for await (const _ of grpc.workflow.watchWorkflow({
      model: demoModels.workflow,
      parameters: { input: "watch me" },
    }));
    await grpc.workflow.runWorkflow({
      model: asyncEcho,
      mode: RunMode.ASYNC_WAIT,
      parameters: { input: "poll me" },
    });

    const reported = tap.totals();
    expect(reported.reports).toBe(9);
    expect(reported.prompt).toBeGreaterThan(0);
    expect(reported.completion).toBeGreaterThan(0);
    const text = await scrape();
    const tokens = "coze_gateway_coze_tokens_total";
    expect(sum(text, tokens, { type: "prompt" })).toBe(reported.prompt);
    expect(sum(text, tokens, { type: "completion" })).toBe(reported.completion);

    // Each key's share in the metrics is the sum of its requests' lines.
    const lines = (await requestLines()).filter((l) => l.model !== undefined);
    expect(lines).toHaveLength(9);
    for (const [name] of [["demo"], ["team-b"]] as const) {
      const mine = lines.filter((l) => l.caller === name);
      const prompt = mine.reduce((n, l) => n + Number(l.promptTokens), 0);
      const completion = mine.reduce((n, l) => n + Number(l.completionTokens), 0);
      expect(sum(text, tokens, { key: name, type: "prompt" })).toBe(prompt);
      expect(sum(text, tokens, { key: name, type: "completion" })).toBe(completion);
    }
    expect(sum(text, "coze_gateway_key_requests_total", { key: "demo", outcome: "ok" })).toBe(4);
    expect(sum(text, "coze_gateway_key_requests_total", { key: "team-b", outcome: "ok" })).toBe(5);
    expect(
      sum(text, "coze_gateway_key_requests_total", {
        key: "team-b",
        model: "workflow-async:*",
      }),
    ).toBe(1);

    // The lines name the model, its kind and the channel, and carry the tokens.
    const grpcChat = lines.find((l) => l.method === "cozegateway.v1.ChatService/Chat");
    expect(grpcChat).toMatchObject({
      caller: "team-b",
      client: "127.0.0.1",
      model: demoModels.reasoning,
      kind: "bot",
      channel: "demo",
      code: "ok",
      outcome: "ok",
    });
    expect(Number(grpcChat?.promptTokens)).toBeGreaterThan(0);
    const asyncRun = lines.find((l) => l.model === asyncEcho);
    expect(asyncRun).toMatchObject({ kind: "workflow_async", channel: "demo", outcome: "ok" });
  });

  it("gives a model no route serves no label series of its own, and names why each call failed", async () => {
    const before = await requestLines();
    const bogus = "no-such-model-c4b1f0";
    const rest = (key: string, body: unknown) =>
      fetch(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const hi = [{ role: "user", content: "hi" }];
    expect((await rest(demo.apiKey, { model: bogus, messages: hi })).status).toBe(404);
    expect((await rest(keyLimited, { model: demoModels.reasoning, messages: hi })).status).toBe(
      403,
    );
    expect((await rest("sk-nobody-0123456789abcdef", { model: bogus, messages: hi })).status).toBe(
      401,
    );
    const badRole = await rest(demo.apiKey, { model: demoModels.bot, messages: [{ role: "x" }] });
    expect(badRole.status).toBe(400);
    expect((await fetch(`${gateway.url}/v1/nothing-here`)).status).toBe(401);
    const unknownPath = await fetch(`${gateway.url}/v1/nothing-here`, {
      headers: { authorization: `Bearer ${demo.apiKey}` },
    });
    expect(unknownPath.status).toBe(404);
    // A procedure path no service serves is answered by Connect itself, before any interceptor.
    const noProcedure = await fetch(`${gateway.url}/cozegateway.v1.ChatService/Nope`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(noProcedure.status).toBe(404);
    const grpc = clients(
      createGrpcTransport({ baseUrl: gateway.url, interceptors: [auth(demo.apiKey)] }),
    );
    await expect(grpc.chat.chat({ model: bogus, messages: [user("hi")] })).rejects.toThrow();
    await expect(grpc.chat.chat({ messages: [user("hi")] })).rejects.toThrow();

    const lines = (await requestLines()).slice(before.length);
    const pick = (l: Record<string, unknown>) => ({
      method: l.method,
      code: l.code,
      outcome: l.outcome,
      caller: l.caller,
      model: l.model,
      reason: l.reason,
      field: l.field,
    });
    expect(lines.map(pick)).toEqual([
      {
        method: "POST /v1/chat/completions",
        code: "404",
        outcome: "client_error",
        caller: "demo",
        model: bogus,
        reason: "unknown_model",
        field: "model",
      },
      {
        method: "POST /v1/chat/completions",
        code: "403",
        outcome: "client_error",
        caller: "limited",
        model: demoModels.reasoning,
        reason: "model_not_allowed",
        field: "model",
      },
      {
        method: "POST /v1/chat/completions",
        code: "401",
        outcome: "client_error",
        caller: undefined,
        model: undefined,
        reason: "unknown_key",
        field: undefined,
      },
      {
        method: "POST /v1/chat/completions",
        code: "400",
        outcome: "client_error",
        caller: "demo",
        model: undefined,
        reason: "invalid_argument",
        field: "messages[0].role",
      },
      {
        method: "GET other",
        code: "401",
        outcome: "client_error",
        caller: undefined,
        model: undefined,
        reason: "missing_key",
        field: undefined,
      },
      {
        method: "GET other",
        code: "404",
        outcome: "client_error",
        caller: "demo",
        model: undefined,
        reason: "not_found",
        field: undefined,
      },
      {
        method: "POST other",
        code: "404",
        outcome: "client_error",
        caller: undefined,
        model: undefined,
        reason: "not_found",
        field: undefined,
      },
      {
        method: "cozegateway.v1.ChatService/Chat",
        code: "not_found",
        outcome: "client_error",
        caller: "demo",
        model: bogus,
        reason: "unknown_model",
        field: "model",
      },
      {
        method: "cozegateway.v1.ChatService/Chat",
        code: "invalid_argument",
        outcome: "client_error",
        caller: "demo",
        model: undefined,
        reason: "invalid_argument",
        field: "model",
      },
    ]);
    const text = await scrape();
    expect(text).not.toContain(bogus);
    expect(text).not.toContain("sk-nobody");
    expect(
      sum(text, "coze_gateway_key_requests_total", {
        key: "demo",
        model: "other",
        outcome: "client_error",
      }),
    ).toBe(2);
    expect(sum(text, "coze_gateway_request_failures_total", { reason: "unknown_key" })).toBe(1);
    expect(sum(text, "coze_gateway_request_failures_total", { reason: "model_not_allowed" })).toBe(
      1,
    );
  });

  it("logs and counts a REST stream that fails after its first chunk as a failure, not a 200", async () => {
    const before = await requestLines();
    // Created, in progress, then a delta or two: the 200 and the first chunk are out by then.
    demo.emulator.faults.inject({ kind: "reset", endpoint: "chat", afterEvents: 4, times: 1 });
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${demo.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: demoModels.bot,
        stream: true,
        messages: [{ role: "user", content: "one two three four five six seven eight" }],
      }),
    });
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toContain('"role":"assistant"');
    expect(body).toContain('"error"');
    expect(body).not.toContain("[DONE]");
    const [line] = (await requestLines()).slice(before.length);
    expect(line).toMatchObject({
      method: "POST /v1/chat/completions",
      outcome: "error",
      caller: "demo",
      model: demoModels.bot,
    });
    expect(line?.code).toMatch(/^5\d\d$/);
    expect(String(line?.reason)).toMatch(/^coze_/);
    const text = await scrape();
    expect(
      sum(text, "coze_gateway_requests_total", {
        method: "POST /v1/chat/completions",
        code: String(line?.code),
      }),
    ).toBe(1);
    expect(
      sum(text, "coze_gateway_key_requests_total", {
        key: "demo",
        model: demoModels.bot,
        outcome: "error",
      }),
    ).toBe(1);
  });
});
