import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { rawRequest } from "../../test/support/raw-http.js";
import {
  createTestTransport,
  startTestServer,
  stubRoutes,
  type TestServer,
  testDoor,
  testKey,
  withKey,
} from "../../test/support/test-server.js";
import { noteLogId } from "../coze/http.js";
import { ChatService } from "../gen/cozegateway/v1/chat_pb.js";
import { ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { createMetrics } from "../observability/metrics.js";
import { requestOf } from "./request-context.js";

let ts: TestServer | undefined;
afterEach(async () => {
  await ts?.server.close();
  ts = undefined;
});

describe("request observation", () => {
  it("records each RPC's procedure and code, and logs one line with ids but never the key", async () => {
    const metrics = createMetrics({ processMetrics: false });
    ts = await startTestServer({ metrics });
    const client = createTestTransport("gRPC over HTTP/2", ts.server.url);
    try {
      const models = createClient(ModelService, client.transport);
      await models.listModels({}, withKey());
      const err = await models.listModels({}).catch((e: unknown) => ConnectError.from(e));
      expect((err as ConnectError).code).toBe(Code.Unauthenticated);
      const chat = createClient(ChatService, client.transport);
      for await (const _ of chat.chatStream({ messages: [{ content: "a b c" }] }, withKey()));
    } finally {
      client.close();
    }
    const text = await metrics.render();
    expect(text).toContain(
      'coze_gateway_requests_total{method="cozegateway.v1.ModelService/ListModels",code="ok"} 1',
    );
    expect(text).toContain(
      'coze_gateway_requests_total{method="cozegateway.v1.ModelService/ListModels",code="unauthenticated"} 1',
    );
    expect(text).toContain(
      'coze_gateway_requests_total{method="cozegateway.v1.ChatService/ChatStream",code="ok"} 1',
    );
    expect(text).toContain('coze_gateway_active_streams{kind="grpc"} 0');
    const lines = ts.logs.filter((l) => l.msg === "request");
    expect(lines).toHaveLength(3);
    expect(lines[0]?.fields).toMatchObject({ caller: "tester", code: "ok" });
    expect(lines[0]?.fields?.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(lines[1]?.fields?.caller).toBeUndefined();
    expect(JSON.stringify(ts.logs)).not.toContain(testKey);
  });

  it("returns a request id on every response, keeping a plain one the caller sent", async () => {
    ts = await startTestServer({ metrics: createMetrics({ processMetrics: false }) });
    const mine = await rawRequest(`${ts.server.url}/healthz`, {
      headers: { "x-request-id": "trace-42" },
    });
    expect(mine.headers["x-request-id"]).toBe("trace-42");
    const odd = await rawRequest(`${ts.server.url}/healthz`, {
      headers: { "x-request-id": "a b\tc" },
    });
    expect(odd.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("accounts plain HTTP routes with bounded labels and their status", async () => {
    const metrics = createMetrics({ processMetrics: false });
    ts = await startTestServer({
      metrics,
      doors: [
        {
          ...testDoor((req, res) => {
            noteLogId(requestOf(req), "20250101000000ABCDEF");
            res.writeHead(404);
            res.end();
            return true;
          }),
          // The door names its routes; the server keeps the label it gets.
          label: (method, path) =>
            path.startsWith("/v1/models/") ? `${method} /v1/models/{id}` : `${method} /v1 other`,
        },
      ],
    });
    await rawRequest(`${ts.server.url}/v1/models/some-model-name`, {
      headers: { authorization: `Bearer ${testKey}` },
    });
    await rawRequest(`${ts.server.url}/nobody/knows/this/${"x".repeat(50)}`);
    const text = await metrics.render();
    expect(text).toContain(
      'coze_gateway_requests_total{method="GET /v1/models/{id}",code="404"} 1',
    );
    expect(text).toContain('coze_gateway_requests_total{method="GET other",code="404"} 1');
    const line = ts.logs.find(
      (l) => l.msg === "request" && l.fields?.method === "GET /v1/models/{id}",
    );
    expect(line?.fields).toMatchObject({ caller: "tester", cozeLogIds: ["20250101000000ABCDEF"] });
  });

  it("names the client behind a trusted proxy from X-Forwarded-For, over HTTP and gRPC", async () => {
    ts = await startTestServer({ trustedProxies: ["127.0.0.0/8"] });
    const forwarded = { "x-forwarded-for": "198.51.100.1, 203.0.113.7" };
    await rawRequest(`${ts.server.url}/healthz`, { headers: forwarded });
    const client = createTestTransport("gRPC over HTTP/2", ts.server.url);
    try {
      const models = createClient(ModelService, client.transport);
      await models.listModels({}, { headers: { ...withKey().headers, ...forwarded } });
    } finally {
      client.close();
    }
    const lines = ts.logs.filter((l) => l.msg === "request");
    expect(lines.map((l) => [l.fields?.method, l.fields?.client])).toEqual([
      ["GET /healthz", "203.0.113.7"],
      ["cozegateway.v1.ModelService/ListModels", "203.0.113.7"],
    ]);
  });

  it("ignores X-Forwarded-For from a peer that is not a trusted proxy", async () => {
    ts = await startTestServer({ trustedProxies: ["10.0.0.0/8"] });
    await rawRequest(`${ts.server.url}/healthz`, {
      headers: { "x-forwarded-for": "203.0.113.7" },
    });
    const client = createTestTransport("Connect JSON over HTTP/1.1", ts.server.url);
    try {
      const models = createClient(ModelService, client.transport);
      await models.listModels(
        {},
        { headers: { ...withKey().headers, "x-forwarded-for": "203.0.113.7" } },
      );
    } finally {
      client.close();
    }
    const lines = ts.logs.filter((l) => l.msg === "request");
    expect(lines.map((l) => l.fields?.client)).toEqual(["127.0.0.1", "127.0.0.1"]);
  });

  it("gives a line to a procedure call Connect refuses before any interceptor, and to health checks", async () => {
    const metrics = createMetrics({ processMetrics: false });
    ts = await startTestServer({ metrics });
    // A served procedure with a content type Connect does not take: 415 from Connect itself.
    const wrongType = await rawRequest(`${ts.server.url}/cozegateway.v1.ModelService/ListModels`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "{}",
    });
    expect(wrongType.status).toBe(415);
    const client = createTestTransport("gRPC over HTTP/2", ts.server.url);
    try {
      await createClient(Health, client.transport).check({});
    } finally {
      client.close();
    }
    const lines = ts.logs.filter((l) => l.msg === "request");
    expect(lines.map((l) => [l.fields?.method, l.fields?.code, l.fields?.reason])).toEqual([
      ["cozegateway.v1.ModelService/ListModels", "415", "unsupported_media_type"],
      ["grpc.health.v1.Health/Check", "ok", undefined],
    ]);
    expect(await metrics.render()).toContain(
      'coze_gateway_requests_total{method="cozegateway.v1.ModelService/ListModels",code="415"} 1',
    );
  });

  it("writes one line for a server stream whose client goes away midway", async () => {
    ts = await startTestServer({
      routes: stubRoutes({
        async *chatStream(_req, ctx) {
          yield { event: { case: "started", value: { chatId: "c", conversationId: "v" } } };
          // Nothing more until the call is aborted.
          await new Promise<void>((resolve) => {
            ctx.signal.addEventListener("abort", () => resolve(), { once: true });
          });
        },
      }),
    });
    for (const protocol of ["gRPC over HTTP/2", "Connect JSON over HTTP/1.1"] as const) {
      const client = createTestTransport(protocol, ts.server.url);
      const abort = new AbortController();
      try {
        const chat = createClient(ChatService, client.transport);
        const stream = chat.chatStream(
          { messages: [{ content: "a" }] },
          { ...withKey(), signal: abort.signal },
        );
        for await (const _ of stream) abort.abort();
      } catch {
        // The client's own abort.
      } finally {
        client.close();
      }
    }
    const lines = async () => ts?.logs.filter((l) => l.msg === "request") ?? [];
    for (let i = 0; i < 200 && (await lines()).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect((await lines()).map((l) => [l.fields?.method, l.fields?.outcome])).toEqual([
      ["cozegateway.v1.ChatService/ChatStream", "canceled"],
      ["cozegateway.v1.ChatService/ChatStream", "canceled"],
    ]);
  });
});
