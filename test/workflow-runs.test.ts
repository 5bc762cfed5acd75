import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../src/config/index.js";
import { demoModels } from "../src/demo.js";
import { catalog } from "../src/emulator/index.js";
import { startGateway } from "../src/gateway.js";
import { RunMode, WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";
import { cozeIdOf, handed } from "./support/handles.js";

// Issue 16 "Runs that are never lost": a workflow run's execute id reaches the caller as soon
// as the gateway knows it, every error about a run names it, and REST can find a run again.

const otherKey = "other-key-0123456789abcdef";
let fx: GatewayFixture;
beforeAll(async () => {
  fx = await startGatewayFixture({
    apiKeys: [
      { name: "other", sha256: hashApiKey(otherKey), models: undefined, rawCozeIds: false },
    ],
  });
});
afterAll(async () => {
  await fx?.close();
});
beforeEach(() => fx.demo.emulator.reset());
afterEach(async () => {
  await expect.poll(() => fx.demo.emulator.stats().openStreams).toBe(0);
});

type Extra = Record<string, unknown>;
const asyncModel = demoModels.workflowAsync;
const user = (content: string) => ({ role: "user", content });
const headers = (key = fx.key) => ({
  authorization: `Bearer ${key}`,
  "content-type": "application/json",
});
const complete = (body: Extra, url = fx.url, key = fx.key) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: headers(key),
    body: JSON.stringify(body),
  });
const lookup = (id: string, query: string, key = fx.key) =>
  fetch(`${fx.url}/v1/workflow_runs/${encodeURIComponent(id)}?${query}`, { headers: headers(key) });
const modelQuery = `model=${encodeURIComponent(asyncModel)}`;

/** The SSE events of a body: `data:` payloads parsed, comments kept as text. */
function sse(text: string): { data: Extra[]; comments: string[]; done: boolean } {
  const blocks = text.split("\n\n").filter((b) => b !== "");
  const data: Extra[] = [];
  const comments: string[] = [];
  let done = false;
  for (const b of blocks) {
    if (b.startsWith(":")) comments.push(b);
    else if (b === "data: [DONE]") done = true;
    else data.push(JSON.parse(b.slice("data: ".length)));
  }
  return { data, comments, done };
}

/** A finished async run's execute id, handed to the demo key. */
async function finishedRun(input = "done"): Promise<string> {
  const res = await complete({
    model: asyncModel,
    messages: [user(input)],
    parameters: { input, polls: 1 },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as Extra).execute_id as string;
}

/** Starts an async run through gRPC that finishes on its `polls`-th history read. */
async function startedRun(polls: number, key = fx.key): Promise<string> {
  const wf = createClient(WorkflowService, grpc(fx.url, key));
  const r = await wf.runWorkflow({
    model: asyncModel,
    mode: RunMode.ASYNC,
    parameters: { input: "later", polls },
  });
  return r.executeId;
}

function grpc(baseUrl: string, key: string) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
  return createGrpcTransport({ baseUrl, interceptors: [auth] });
}

describe("a streamed async run names itself at once and shows its progress", () => {
  it("sends the execute id in X-Coze-Execute-Id and the first chunk, then : progress comments", async () => {
    const res = await complete({
      model: asyncModel,
      stream: true,
      messages: [user("x")],
      parameters: { input: "slow", polls: 3 },
    });
    const id = res.headers.get("x-coze-execute-id");
    expect(id).toMatch(handed);
    const { data, comments, done } = sse(await res.text());
    expect(data[0]).toMatchObject({ execute_id: id, choices: [{ delta: { role: "assistant" } }] });
    const progress = comments
      .filter((c) => c.startsWith(": progress "))
      .map((c) => JSON.parse(c.slice(": progress ".length)));
    expect(progress.map((p) => [p.execute_id, p.status, p.polls])).toEqual([
      [id, "running", 1],
      [id, "running", 2],
      [id, "succeeded", 3],
    ]);
    expect(progress.every((p) => Number.isInteger(p.elapsed_ms) && p.elapsed_ms >= 0)).toBe(true);
    expect(data.at(-1)).toMatchObject({ execute_id: id, choices: [{ finish_reason: "stop" }] });
    expect(done).toBe(true);
  });

  it("gives the openai SDK the execute id on its first chunk, and Responses on response.created", async () => {
    const client = new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: fx.key, maxRetries: 0 });
    const params = {
      model: asyncModel,
      messages: [user("x")],
      parameters: { input: "a", polls: 2 },
    };
    const stream = await client.chat.completions.create({ ...params, stream: true } as never);
    const chunks: Extra[] = [];
    for await (const c of stream as unknown as AsyncIterable<Extra>) chunks.push(c);
    expect(chunks[0]?.execute_id).toMatch(handed);
    const events = await client.responses.create({
      model: asyncModel,
      input: "a",
      parameters: { input: "a", polls: 2 },
      stream: true,
    } as never);
    const types: Extra[] = [];
    for await (const e of events as unknown as AsyncIterable<Extra>) types.push(e);
    const created = types[0] as { type: string; response: Extra };
    expect(created.type).toBe("response.created");
    expect(created.response.execute_id).toMatch(handed);
  });
});

describe("GET /v1/workflow_runs/{execute_id}", () => {
  it("reads a finished run as a completion would give its output", async () => {
    const id = await finishedRun("done");
    const res = await lookup(id, modelQuery);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-coze-execute-id")).toBe(id);
    const run = (await res.json()) as Extra;
    expect(run).toMatchObject({
      object: "workflow.run",
      execute_id: id,
      model: asyncModel,
      status: "succeeded",
      error_code: null,
    });
    // The emulator's output holds the other parameters too: the content is its JSON text.
    expect(JSON.parse(run.content as string).output).toBe("done");
    expect(run.output_json).toBe(run.content);
    expect(run.created_at).toEqual(expect.any(Number));
  });

  it("reads a run that is still going", async () => {
    const id = await startedRun(100);
    const run = (await (await lookup(id, modelQuery)).json()) as Extra;
    expect(run).toMatchObject({
      execute_id: id,
      status: "running",
      content: null,
      output_json: null,
    });
  });

  it("re-attaches with ?stream=true: the rest of the run as a chat completion stream", async () => {
    const id = await startedRun(3);
    const res = await lookup(id, `${modelQuery}&stream=true`);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    expect(res.headers.get("x-coze-execute-id")).toBe(id);
    const { data, comments, done } = sse(await res.text());
    expect(data[0]?.execute_id).toBe(id);
    const content = data.map((d) => (d.choices as Extra[])[0]?.delta as Extra | undefined);
    expect(JSON.parse(content.map((c) => c?.content ?? "").join("")).output).toBe("later");
    expect(comments.filter((c) => c.startsWith(": progress ")).length).toBeGreaterThanOrEqual(1);
    expect(data.at(-1)?.execute_id).toBe(id);
    expect(done).toBe(true);
  });

  it("re-attaches to a run that ended long ago and reads it at once, not after a poll interval", async () => {
    // Polls a minute apart: only a read at once answers before the test's timeout.
    const own = await startGatewayFixture({ pollIntervalMs: 60_000 });
    try {
      const wf = createClient(WorkflowService, grpc(own.url, own.key));
      const { executeId: id } = await wf.runWorkflow({
        model: asyncModel,
        mode: RunMode.ASYNC,
        parameters: { input: "old", polls: 1 },
      });
      const res = await fetch(
        `${own.url}/v1/workflow_runs/${encodeURIComponent(id)}?${modelQuery}&stream=true`,
        { headers: headers(own.key) },
      );
      const { data, done } = sse(await res.text());
      const text = data
        .map((d) => ((d.choices as Extra[])[0]?.delta as Extra)?.content ?? "")
        .join("");
      expect(JSON.parse(text).output).toBe("old");
      expect(done).toBe(true);
      expect(own.demo.emulator.stats().polls[cozeIdOf(id)]).toBe(1);
    } finally {
      await own.close();
    }
  });

  it("answers a failed run with its Coze error, and a re-attach with an error event naming it", async () => {
    const wf = createClient(WorkflowService, grpc(fx.url, fx.key));
    const started = await wf.runWorkflow({
      model: `workflow-async:${catalog.workflows.failing}`,
      mode: RunMode.ASYNC,
      parameters: { input: "x" },
    });
    const model = `model=${encodeURIComponent(`workflow-async:${catalog.workflows.failing}`)}`;
    const run = (await (await lookup(started.executeId, model)).json()) as Extra;
    expect(run).toMatchObject({ status: "failed", error_code: "720702017", content: null });
    const { data, done } = sse(
      await (await lookup(started.executeId, `${model}&stream=true`)).text(),
    );
    expect(done).toBe(false);
    expect(data.at(-1)?.error).toMatchObject({
      code: "upstream_error",
      execute_id: started.executeId,
    });
  });

  it("is a 404 for another key's run, a forged, truncated or raw id; 400 for a bad query; 405 for POST", async () => {
    const id = await finishedRun();
    const tag = id.slice(id.indexOf(".") + 1);
    const forged = `${cozeIdOf(id)}.${tag[0] === "A" ? "B" : "A"}${tag.slice(1)}`;
    const notFound = [
      ["another key's", id, otherKey],
      ["forged", forged, fx.key],
      ["truncated", id.slice(0, -1), fx.key],
      ["raw Coze", cozeIdOf(id), fx.key],
      ["another kind's", `${cozeIdOf(id)}.${"A".repeat(22)}`, fx.key],
      ["oversized", `${"9".repeat(5000)}.${tag}`, fx.key],
    ] as const;
    for (const [what, handle, key] of notFound) {
      for (const q of [modelQuery, `${modelQuery}&stream=true`]) {
        const res = await lookup(handle, q, key);
        expect(res.status, `${what} ${q}`).toBe(404);
        const body = (await res.json()) as { error: Extra };
        expect(body.error, what).toMatchObject({ code: "not_found", param: "execute_id" });
        expect(body.error.execute_id, what).toBeUndefined();
      }
    }
    const bad: [string, string][] = [
      ["", "model"],
      [`${modelQuery}&${modelQuery}`, "model"],
      [`${modelQuery}&stream=yes`, "stream"],
      [`${modelQuery}&stream=true&stream=false`, "stream"],
    ];
    for (const [q, param] of bad) {
      const res = await lookup(id, q);
      expect([res.status, ((await res.json()) as { error: Extra }).error.param], q).toEqual([
        400,
        param,
      ]);
    }
    // No id: never a new run (WatchWorkflow without an id starts one).
    for (const q of [modelQuery, `${modelQuery}&stream=true`]) {
      const res = await lookup("", q);
      expect([res.status, ((await res.json()) as { error: Extra }).error.param]).toEqual([
        400,
        "execute_id",
      ]);
    }
    const malformed = await lookup("%E0%A4%A", modelQuery);
    expect(malformed.status).toBe(404);
    expect(fx.demo.emulator.stats().workflowRunsStarted).toBe(1);
    const post = await fetch(`${fx.url}/v1/workflow_runs/${id}?${modelQuery}`, {
      method: "POST",
      headers: headers(),
      body: "{}",
    });
    expect([post.status, post.headers.get("allow")]).toEqual([405, "GET"]);
    const unauthenticated = await fetch(`${fx.url}/v1/workflow_runs/${id}?${modelQuery}`);
    expect(unauthenticated.status).toBe(401);
  });
});

describe("errors about a run name it", () => {
  it("names a failed async run in the REST error (body and header) and the gRPC metadata", async () => {
    const failing = `workflow-async:${catalog.workflows.failing}`;
    const res = await complete({ model: failing, messages: [user("x")] });
    expect(res.status).toBe(502);
    const { error } = (await res.json()) as { error: Extra };
    expect(error.execute_id).toMatch(handed);
    expect(res.headers.get("x-coze-execute-id")).toBe(error.execute_id);
    expect(res.headers.get("x-should-retry")).toBe("false");
    const wf = createClient(WorkflowService, grpc(fx.url, fx.key));
    const err = await wf
      .runWorkflow({ model: failing, parameters: { input: "x" } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).metadata.get("x-coze-execute-id")).toMatch(handed);
  });

  it("names a failed async run in the Responses API's error, streamed or not", async () => {
    const failing = `workflow-async:${catalog.workflows.failing}`;
    const res = await fetch(`${fx.url}/v1/responses`, {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ model: failing, input: "x" }),
    });
    const { error } = (await res.json()) as { error: Extra };
    expect([res.status, error.code]).toEqual([502, "upstream_error"]);
    expect(error.execute_id).toMatch(handed);
    const streamed = await fetch(`${fx.url}/v1/responses`, {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ model: failing, input: "x", stream: true }),
    });
    const events = (await streamed.text())
      .split("\n\n")
      .filter((e) => e.includes("data: "))
      .map((e) => JSON.parse(e.slice(e.indexOf("data: ") + 6)) as Extra);
    const created = events.find((e) => e.type === "response.created") as { response: Extra };
    const failed = events.find((e) => e.type === "response.failed") as { response: Extra };
    const id = created.response.execute_id;
    expect(id).toMatch(handed);
    expect(failed.response.error).toMatchObject({ code: "upstream_error", execute_id: id });
    expect((events.at(-1)?.error as Extra | undefined)?.execute_id).toBe(id);
  });

  it("names a failed sync run from Coze's error envelope, as an id bound to the key", async () => {
    const res = await complete({
      model: `workflow:${catalog.workflows.failing}`,
      messages: [user("x")],
    });
    const { error } = (await res.json()) as { error: Extra };
    expect(error.execute_id).toMatch(handed);
    const read = await lookup(
      error.execute_id as string,
      `model=workflow:${catalog.workflows.failing}`,
    );
    expect(((await read.json()) as Extra).status).toBe("failed");
  });
});

describe("reaching max_polls", () => {
  /** A demo gateway whose channel gives up after 3 polls. */
  async function startShort() {
    const { startDemo } = await import("../src/demo.js");
    const demo = await startDemo({ port: 0, deltaMs: 0, pollIntervalMs: 10 });
    const channel = demo.config.channels[0] as (typeof demo.config.channels)[number];
    demo.config.channels[0] = { ...channel, polling: { ...channel.polling, maxPolls: 3 } };
    const gateway = await startGateway({ config: demo.config });
    return {
      demo,
      gateway,
      close: async () => {
        await gateway.close();
        await demo.close();
      },
    };
  }

  it("says the run is still going on Coze, with its id and where to find it, on every door", async () => {
    const own = await startShort();
    try {
      const body = {
        model: asyncModel,
        messages: [user("x")],
        parameters: { input: "x", polls: 100 },
      };
      // The openai SDK, which would retry a 504 twice, does not: the run goes on.
      const client = new OpenAI({
        baseURL: `${own.gateway.url}/v1`,
        apiKey: own.demo.apiKey,
        maxRetries: 2,
      });
      const err = await client.chat.completions.create(body as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.APIError);
      const api = err as InstanceType<typeof OpenAI.APIError>;
      expect([api.status, api.code]).toEqual([504, "still_running"]);
      const id = (api.error as Extra).execute_id as string;
      expect(id).toMatch(handed);
      expect(api.headers?.get("x-coze-execute-id")).toBe(id);
      expect((api.error as Extra).message).toBe(
        `workflow.history: still running on Coze when the gateway stopped waiting; the workflow run goes on at Coze: read it with GET /v1/workflow_runs/${encodeURIComponent(id)}?model=${encodeURIComponent(asyncModel)}, or re-attach with GET /v1/workflow_runs/${encodeURIComponent(id)}?model=${encodeURIComponent(asyncModel)}&stream=true`,
      );
      expect(own.demo.emulator.stats().workflowRunsStarted).toBe(1);

      const streamed = sse(
        await (await complete({ ...body, stream: true }, own.gateway.url, own.demo.apiKey)).text(),
      );
      expect(streamed.done).toBe(false);
      expect(streamed.data.at(-1)?.error).toMatchObject({
        code: "still_running",
        execute_id: streamed.data[0]?.execute_id,
      });

      const wf = createClient(WorkflowService, grpc(own.gateway.url, own.demo.apiKey));
      const grpcErr = (await wf
        .runWorkflow({ model: asyncModel, parameters: { input: "x", polls: 100 } })
        .catch((e: unknown) => e)) as ConnectError;
      expect(grpcErr.code).toBe(Code.DeadlineExceeded);
      expect(grpcErr.metadata.get("x-gateway-error")).toBe("still_running");
      const grpcId = grpcErr.metadata.get("x-coze-execute-id");
      expect(grpcId).toMatch(handed);
      expect(grpcErr.rawMessage).toContain(
        `pass execute_id ${grpcId} to WorkflowService.WatchWorkflow`,
      );
    } finally {
      await own.close();
    }
  });
});

describe("a shutdown that cuts a run's stream", () => {
  it("says how to re-attach, over REST and gRPC", async () => {
    const own = await startGatewayFixture({ pollIntervalMs: 50 });
    const res = await complete(
      {
        model: asyncModel,
        stream: true,
        messages: [user("x")],
        parameters: { input: "x", polls: 10_000 },
      },
      own.url,
      own.key,
    );
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    const wf = createClient(WorkflowService, grpc(own.url, own.key));
    const watched: string[] = [];
    const watch = (async () => {
      for await (const ev of wf.watchWorkflow({
        model: asyncModel,
        parameters: { input: "y", polls: 10_000 },
      })) {
        if (ev.event.case === "progress") watched.push(ev.event.value.executeId);
      }
    })().catch((e: unknown) => e);
    await expect.poll(() => watched.length).toBeGreaterThan(0);
    const closed = own.close();
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      text += new TextDecoder().decode(r.value);
    }
    const grpcErr = (await watch) as ConnectError;
    await closed;
    const { data, done } = sse(text);
    const id = data[0]?.execute_id as string;
    expect(done).toBe(false);
    expect(data.at(-1)?.error).toMatchObject({
      code: "unavailable",
      execute_id: id,
      message: `server is shutting down; the workflow run goes on at Coze: read it with GET /v1/workflow_runs/${encodeURIComponent(id)}?model=${encodeURIComponent(asyncModel)}, or re-attach with GET /v1/workflow_runs/${encodeURIComponent(id)}?model=${encodeURIComponent(asyncModel)}&stream=true`,
    });
    expect(grpcErr).toBeInstanceOf(ConnectError);
    expect(grpcErr.code).toBe(Code.Unavailable);
    expect(grpcErr.metadata.get("x-coze-execute-id")).toBe(watched[0]);
    expect(grpcErr.rawMessage).toContain(
      `pass execute_id ${watched[0]} to WorkflowService.WatchWorkflow`,
    );
  });
});

describe("docs/clients.md, runs that are never lost", () => {
  let own: GatewayFixture;
  beforeAll(async () => {
    // The demo run takes 4 s: polls 100 ms apart see it end within max_polls.
    own = await startGatewayFixture({ pollIntervalMs: 100 });
  });
  afterAll(async () => {
    await own?.close();
  });

  it("has commands that start a run, read it and re-attach to it, as written", async () => {
    const { execFile } = await import("node:child_process");
    const { readFileSync } = await import("node:fs");
    const { promisify } = await import("node:util");
    const section =
      readFileSync("docs/clients.md", "utf8").split(
        "### `GET /v1/workflow_runs/{execute_id}`",
      )[1] ?? "";
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
    const lines = block
      .replace(/\\\n\s*/g, "")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => l.replaceAll("http://127.0.0.1:8080", own.url));
    expect(lines).toHaveLength(3);
    const run = (script: string) =>
      promisify(execFile)("bash", ["-c", script], {
        env: { PATH: process.env.PATH, KEY: own.key },
      });
    const read = await run(`${lines[0]}\n${lines[1]}`);
    const got = JSON.parse(read.stdout);
    expect(got).toMatchObject({
      object: "workflow.run",
      execute_id: expect.stringMatching(handed),
    });
    const attached = await run(`${lines[0]}\n${lines[2]}`);
    const { data, done } = sse(attached.stdout);
    expect(data[0]?.execute_id, attached.stdout.slice(-300)).toMatch(handed);
    expect(done, attached.stdout.slice(-300)).toBe(true);
  });
});
