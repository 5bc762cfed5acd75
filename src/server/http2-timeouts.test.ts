import { once } from "node:events";
import { type ClientHttp2Session, connect as connectHttp2 } from "node:http2";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { createTestCertificate } from "../../test/support/certificates.js";
import { within } from "../../test/support/raw-http.js";
import {
  createTestTransport,
  startTestServer,
  stubRoutes,
  type TestServer,
  type TestTransport,
  testDoor,
  testKey,
  testLimits,
  withKey,
} from "../../test/support/test-server.js";
import { ChatService, type ChatStreamResponseSchema } from "../gen/cozegateway/v1/chat_pb.js";
import type { ConnectionLimits } from "./connection-limits.js";
import type { GatewayServerOptions } from "./gateway-server.js";
import type { NodeRequest, NodeResponse } from "./http-response.js";

// Issue 13, "Connections": an idle h2c session, or a stream that sent its headers and nothing
// more, stayed open for ever. Deadlines here are a few hundred ms; every wait is bounded.
const limits: ConnectionLimits = {
  ...testLimits,
  idleTimeoutMs: 300,
  headersTimeoutMs: 200,
  requestTimeoutMs: 300,
};
/** Long enough for any deadline above to pass and be noticed on a busy machine. */
const bound = 3000;

const started: TestServer[] = [];
const sessions: ClientHttp2Session[] = [];
const transports: TestTransport[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
  for (const t of transports.splice(0)) t.close();
  await Promise.all(started.splice(0).map((ts) => ts.server.close()));
});

const start = async (overrides: Partial<GatewayServerOptions> = {}) => {
  const ts = await startTestServer({ limits, doors: [testDoor(slowRoutes)], ...overrides });
  started.push(ts);
  return ts.server;
};

const open = (url: string, ca?: string) => {
  const session = connectHttp2(url, ca ? { ca } : {});
  session.on("error", () => {});
  sessions.push(session);
  return session;
};

/**
 * REST stubs: `/v1/drip` answers ten chunks 100 ms apart (a stream of a second); `/v1/echo`
 * reads the whole body, then answers it; `/v1/late-echo` does the same after 500 ms (longer
 * than the request timeout) of doing nothing.
 */
async function slowRoutes(req: NodeRequest, res: NodeResponse): Promise<boolean> {
  if (req.url === "/v1/drip") {
    res.writeHead(200, { "content-type": "text/plain" });
    for (let i = 0; i < 10 && !res.destroyed; i++) {
      (res as { write(chunk: string): boolean }).write(`${i}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    res.end();
    return true;
  }
  if (req.url === "/v1/echo" || req.url === "/v1/late-echo") {
    if (req.url === "/v1/late-echo") await new Promise((resolve) => setTimeout(resolve, 500));
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    res.end(Buffer.concat(chunks));
    return true;
  }
  return false;
}

/**
 * Reads a whole response of `stream`, status and body, until the stream closes (a reset after
 * the answer included: the server may stop a request it answered early, RFC 9113 §8.1).
 */
async function answer(stream: ReturnType<ClientHttp2Session["request"]>) {
  let body = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    body += chunk;
  });
  stream.on("error", () => {});
  const [headers] = (await once(stream, "response")) as [Record<string, unknown>];
  if (!stream.closed) await once(stream, "close");
  return { status: headers[":status"], body };
}

describe("HTTP/2 idle sessions", () => {
  it("closes an h2c session that never opens a stream once the idle timeout has passed", async () => {
    const server = await start();
    const session = open(server.url);
    const t0 = performance.now();
    const goaway = once(session, "goaway");
    await within(once(session, "close"), bound, "the server closing the idle session");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(limits.idleTimeoutMs - 50);
    const [code] = (await within(goaway, 100, "GOAWAY")) as [number];
    expect(code).toBe(0); // NO_ERROR: a graceful close
  });

  it("keeps a session open while its stream lasts longer than the idle timeout, then closes it", async () => {
    const server = await start();
    const session = open(server.url);
    const res = await answer(
      session.request({ ":path": "/v1/drip", authorization: `Bearer ${testKey}` }),
    );
    expect(res).toEqual({ status: 200, body: "0123456789" });
    expect(session.closed).toBe(false);
    const t0 = performance.now();
    await within(once(session, "close"), bound, "the server closing the session after its stream");
    // The timer started again when the stream ended, not when the session opened.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(limits.idleTimeoutMs - 50);
  });

  it("closes an idle h2 session over TLS too", async () => {
    const certificate = createTestCertificate();
    const server = await start({ tls: certificate });
    const session = open(server.url, certificate.cert);
    await within(once(session, "close"), bound, "the server closing the idle session");
  });
});

describe("HTTP/2 request deadline", () => {
  it("answers 408 to an unauthenticated gRPC stream that sent its headers and nothing more", async () => {
    const server = await start();
    const session = open(server.url);
    const stream = session.request(
      {
        ":method": "POST",
        ":path": "/cozegateway.v1.ModelService/ListModels",
        "content-type": "application/grpc",
        te: "trailers",
      },
      { endStream: false },
    );
    const t0 = performance.now();
    const res = await within(answer(stream), bound, "an answer to the silent stream");
    expect(res.status).toBe(408);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: "request_timeout" } });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(limits.requestTimeoutMs - 50);
    expect(stream.rstCode).toBe(0); // NO_ERROR: stop sending, the answer is complete
  });

  it("answers 408 to a REST request whose body stops halfway", async () => {
    const server = await start();
    const session = open(server.url);
    const stream = session.request(
      { ":method": "POST", ":path": "/v1/echo", authorization: `Bearer ${testKey}` },
      { endStream: false },
    );
    stream.write('{"model":');
    const res = await within(answer(stream), bound, "an answer to the stalled body");
    expect(res.status).toBe(408);
  });

  it("lets a body that arrived in time through, however late the handler reads it", async () => {
    const server = await start();
    const session = open(server.url);
    const stream = session.request({
      ":method": "POST",
      ":path": "/v1/late-echo",
      authorization: `Bearer ${testKey}`,
    });
    stream.end("hello");
    expect(await within(answer(stream), bound, "the echo")).toEqual({ status: 200, body: "hello" });
  });

  it("does not cut an authenticated gRPC stream that lasts longer than the request and idle timeouts", async () => {
    const server = await start({
      routes: stubRoutes({
        async *chatStream(): AsyncGenerator<MessageInitShape<typeof ChatStreamResponseSchema>> {
          for (let i = 0; i < 10; i++) {
            yield { event: { case: "delta", value: { text: String(i) } } };
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          yield { event: { case: "completed", value: {} } };
        },
      }),
    });
    const client = createTestTransport("gRPC over HTTP/2", server.url);
    transports.push(client);
    let text = "";
    const chat = createClient(ChatService, client.transport);
    for await (const e of chat.chatStream({ messages: [{ content: "x" }] }, withKey())) {
      if (e.event.case === "delta") text += e.event.value.text;
    }
    expect(text).toBe("0123456789");
  });
});

describe("HTTP/2 SETTINGS", () => {
  it("advertises the configured maxConcurrentStreams", async () => {
    const server = await start({ limits: { ...limits, maxConcurrentStreams: 7 } });
    const session = open(server.url);
    await within(once(session, "remoteSettings"), bound, "the server's SETTINGS");
    expect(session.remoteSettings.maxConcurrentStreams).toBe(7);
  });
});
