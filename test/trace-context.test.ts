import { request as http1Request } from "node:http";
import { connect as http2Connect } from "node:http2";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { startTracedGateway, type TracedGateway } from "./support/traced-gateway.js";

// Tracing off (no `tracing` section): a caller's W3C trace context is still kept. Its trace id
// goes into the request's log line and its `traceparent` and `tracestate` reach Coze unchanged
// on every call; a malformed or repeated one is ignored, never an error.

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
const parentId = "00f067aa0ba902b7";
const traceparent = `00-${traceId}-${parentId}-01`;
const tracestate = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

let gw: TracedGateway;
let openai: OpenAI;

beforeAll(async () => {
  gw = await startTracedGateway();
  openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.key, maxRetries: 0 });
}, 30_000);

afterAll(async () => {
  await gw?.close();
});

const messages = [{ role: "user" as const, content: "hello" }];

async function restChat(requestId: string, headers: Record<string, string>) {
  const answer = await openai.chat.completions.create(
    { model: "coze-echo", messages },
    { headers: { "x-request-id": requestId, ...headers } },
  );
  expect(answer.choices[0]?.message.content).toContain("hello");
  return gw.requestLine(requestId);
}

describe("a caller's traceparent, tracing off", () => {
  it("reaches the REST request's log line and every Coze call, as it came", async () => {
    const line = await restChat("tc-rest-1", { traceparent, tracestate });
    expect(line.traceId).toBe(traceId);
    const calls = gw.cozeCalls(line);
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(call.headers.traceparent).toBe(traceparent);
      expect(call.headers.tracestate).toBe(tracestate);
    }
    // The token endpoint serves every request alike: it belongs to no caller's trace.
    for (const r of gw.demo.emulator.requests().filter((c) => c.endpoint === "token")) {
      expect(r.headers.traceparent).toBeUndefined();
    }
  });

  it("reaches the gRPC call's log line and Coze, sampled flag and all", async () => {
    const unsampled = `00-${traceId}-${parentId}-00`;
    const client = createClient(ChatService, createGrpcTransport({ baseUrl: gw.url }));
    await client.chat(
      {
        model: "coze-echo",
        messages: [create(ChatMessageSchema, { role: Role.USER, content: "hi" })],
      },
      {
        headers: {
          authorization: `Bearer ${gw.key}`,
          "x-request-id": "tc-grpc-1",
          traceparent: unsampled,
        },
      },
    );
    const line = await gw.requestLine("tc-grpc-1");
    expect(line.traceId).toBe(traceId);
    const calls = gw.cozeCalls(line);
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(call.headers.traceparent).toBe(unsampled);
      expect(call.headers.tracestate).toBeUndefined();
    }
  });

  it.each([
    ["uppercase digits", `00-${traceId.toUpperCase()}-${parentId}-01`],
    ["an all-zero trace id", `00-${"0".repeat(32)}-${parentId}-01`],
    ["an all-zero parent id", `00-${traceId}-${"0".repeat(16)}-01`],
    ["version ff", `ff-${traceId}-${parentId}-01`],
    ["version 00 with a fifth field", `${traceparent}-00`],
    ["a truncated header", traceparent.slice(0, 40)],
    ["two values in one header", `${traceparent},${traceparent}`],
    ["an oversized header", `00-${"a".repeat(8000)}`],
  ])("ignores %s: the call succeeds, untraced", async (name, header) => {
    const id = `tc-bad-${name.replace(/\W+/g, "-")}`;
    const line = await restChat(id, { traceparent: header, tracestate });
    expect(line.traceId).toBeUndefined();
    expect(line.code).toBe("200");
    for (const call of gw.cozeCalls(line)) {
      expect(call.headers.traceparent).toBeUndefined();
      expect(call.headers.tracestate).toBeUndefined();
    }
  });

  it("keeps the traceparent and drops a malformed tracestate", async () => {
    const line = await restChat("tc-bad-state", { traceparent, tracestate: "Rojo=1" });
    expect(line.traceId).toBe(traceId);
    for (const call of gw.cozeCalls(line)) {
      expect(call.headers.traceparent).toBe(traceparent);
      expect(call.headers.tracestate).toBeUndefined();
    }
  });

  it("ignores a traceparent sent twice over HTTP/1.1, even the same one", async () => {
    const body = JSON.stringify({ model: "coze-echo", messages });
    const status = await new Promise<number>((resolve, reject) => {
      const req = http1Request(
        `${gw.url}/v1/chat/completions`,
        {
          method: "POST",
          headers: {
            authorization: `Bearer ${gw.key}`,
            "content-type": "application/json",
            "x-request-id": "tc-twice-h1",
            traceparent: [traceparent, traceparent],
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    expect(status).toBe(200);
    const line = await gw.requestLine("tc-twice-h1");
    expect(line.traceId).toBeUndefined();
    for (const call of gw.cozeCalls(line)) expect(call.headers.traceparent).toBeUndefined();
  });

  it("ignores a traceparent sent twice over HTTP/2", async () => {
    const session = http2Connect(gw.url);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/v1/chat/completions",
          authorization: `Bearer ${gw.key}`,
          "content-type": "application/json",
          "x-request-id": "tc-twice-h2",
          traceparent: [traceparent, `00-${"1".repeat(32)}-${parentId}-01`],
        });
        let code = 0;
        stream.on("response", (headers) => {
          code = Number(headers[":status"]);
        });
        stream.on("error", reject);
        stream.on("end", () => resolve(code));
        stream.resume();
        stream.end(JSON.stringify({ model: "coze-echo", messages }));
      });
      expect(status).toBe(200);
    } finally {
      session.close();
    }
    const line = await gw.requestLine("tc-twice-h2");
    expect(line.traceId).toBeUndefined();
    for (const call of gw.cozeCalls(line)) expect(call.headers.traceparent).toBeUndefined();
  });

  it("sends no traceparent and logs no trace id for a caller without one", async () => {
    const line = await restChat("tc-none", {});
    expect(line).not.toHaveProperty("traceId");
    const calls = gw.cozeCalls(line);
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) expect(call.headers.traceparent).toBeUndefined();
  });
});
