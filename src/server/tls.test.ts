import { connect as connectTls } from "node:tls";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCertificate } from "../../test/support/certificates.js";
import {
  createTestTransport,
  startTestServer,
  stubRoutes,
  type TestServer,
  type TestTransport,
  withKey,
} from "../../test/support/test-server.js";
import { ChatService } from "../gen/cozegateway/v1/chat_pb.js";
import { ModelService } from "../gen/cozegateway/v1/model_pb.js";

const certificate = createTestCertificate();

describe("TLS with ALPN", () => {
  let ts: TestServer;
  const clients: TestTransport[] = [];
  const ca = certificate.cert;

  beforeAll(async () => {
    ts = await startTestServer({ tls: certificate });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await ts.server.close();
    expect(JSON.stringify(ts.logs)).not.toContain("PRIVATE KEY");
  });

  it("listens on an https URL", () => {
    expect(ts.server.url).toBe(`https://127.0.0.1:${ts.server.port}`);
  });

  it.each(["h2", "http/1.1"])("negotiates %s by ALPN", async (protocol) => {
    const negotiated = await new Promise<string | false>((resolve, reject) => {
      const socket = connectTls(
        { host: "127.0.0.1", port: ts.server.port, ca, ALPNProtocols: [protocol] },
        () => {
          resolve(socket.alpnProtocol ?? false);
          socket.end();
        },
      );
      socket.on("error", reject);
    });
    expect(negotiated).toBe(protocol);
  });

  it.each([
    "gRPC over HTTP/2",
    "Connect JSON over HTTP/1.1",
    "Connect binary over HTTP/1.1",
    "gRPC-Web over HTTP/1.1",
  ] as const)("serves %s over TLS, unary and streaming", async (protocol) => {
    const client = createTestTransport(protocol, ts.server.url, ca);
    clients.push(client);
    const models = await createClient(ModelService, client.transport).listModels({}, withKey());
    expect(models.models.map((m) => m.name)).toEqual(["bot-a", "bot-b"]);
    const cases: (string | undefined)[] = [];
    const stream = createClient(ChatService, client.transport).chatStream(
      { messages: [{ content: "over tls" }] },
      withKey(),
    );
    for await (const e of stream) cases.push(e.event.case);
    expect(cases).toEqual(["started", "delta", "delta", "completed"]);
  });
});

describe("TLS shutdown", () => {
  it("ends a TLS stream with Unavailable and closes idle TLS connections promptly", async () => {
    const ca = certificate.cert;
    const { server } = await startTestServer({
      tls: certificate,
      shutdownGraceMs: 10_000,
      routes: stubRoutes({
        async *chatStream() {
          yield { event: { case: "started", value: {} } };
          await new Promise(() => {});
        },
      }),
    });
    const h2 = createTestTransport("gRPC over HTTP/2", server.url, ca);
    const h1 = createTestTransport("Connect JSON over HTTP/1.1", server.url, ca);
    try {
      await createClient(ModelService, h1.transport).listModels({}, withKey());
      const stream = createClient(ChatService, h2.transport)
        .chatStream({}, withKey())
        [Symbol.asyncIterator]();
      await stream.next();

      const started = performance.now();
      const closed = server.close();
      const err = await stream.next().then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.Unavailable);
      await closed;
      expect(performance.now() - started).toBeLessThan(1000);
    } finally {
      h1.close();
      h2.close();
      await server.close();
    }
  });
});
