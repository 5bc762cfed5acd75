import { afterEach, describe, expect, it } from "vitest";
import { createTestCertificate } from "../../test/support/certificates.js";
import {
  h2cRequestBytes,
  h2StatusOfStream1,
  type RawConnection,
  rawConnect,
  within,
} from "../../test/support/raw-http.js";
import {
  startTestServer,
  type TestServer,
  testDoor,
  testKey,
  testLimits,
} from "../../test/support/test-server.js";
import type { ConnectionLimits } from "./connection-limits.js";
import type { GatewayServerOptions } from "./gateway-server.js";

// Issue 13, "Connections", over raw sockets: what a client that means harm sends over HTTP/1.1
// (and one thing over HTTP/2). Every wait is bounded.
const limits: ConnectionLimits = {
  ...testLimits,
  idleTimeoutMs: 300,
  headersTimeoutMs: 200,
  requestTimeoutMs: 400,
};
/** Long enough for any deadline above to pass and be noticed on a busy machine. */
const bound = 3000;

const started: TestServer[] = [];
const connections: RawConnection[] = [];
afterEach(async () => {
  for (const c of connections.splice(0)) c.socket.destroy();
  await Promise.all(started.splice(0).map((ts) => ts.server.close()));
});

const start = async (overrides: Partial<GatewayServerOptions> = {}) => {
  const ts = await startTestServer({ limits, ...overrides });
  started.push(ts);
  return ts.server;
};

const connectTo = async (port: number, ca?: string) => {
  const c = await rawConnect(port, ca);
  connections.push(c);
  return c;
};

const text = (c: RawConnection) => c.received().toString("latin1");

describe("HTTP/1.1 deadlines", () => {
  it("cuts a request body dripped a byte at a time at the request timeout", async () => {
    const server = await start();
    const c = await connectTo(server.port);
    const body = JSON.stringify({ padding: "x".repeat(80) });
    // A Connect call reads its whole body before it checks the key: nobody is authenticated.
    c.socket.write(
      "POST /cozegateway.v1.ModelService/ListModels HTTP/1.1\r\nHost: gw\r\n" +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    const t0 = performance.now();
    const sent = await within(c.drip(body, 20), bound, "the server cutting the drip");
    await within(c.closed, bound, "the connection's close");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(limits.requestTimeoutMs - 50);
    expect(sent).toBeLessThan(body.length);
    expect(text(c)).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("answers 408 to headers that never end, at the headers timeout", async () => {
    const server = await start();
    const c = await connectTo(server.port);
    c.socket.write("GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: ");
    const t0 = performance.now();
    await within(c.closed, bound, "the connection's close");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(limits.headersTimeoutMs - 50);
    expect(text(c)).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("applies the same deadlines to HTTP/1.1 over TLS", async () => {
    const certificate = createTestCertificate();
    const server = await start({ tls: certificate });
    const c = await connectTo(server.port, certificate.cert);
    c.socket.write("GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: ");
    await within(c.closed, bound, "the connection's close");
    expect(text(c)).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("closes a keep-alive connection left idle for the idle timeout", async () => {
    const server = await start();
    const c = await connectTo(server.port);
    c.socket.write("GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n");
    await within(c.receivedText('{"status":"ok"}'), bound, "the probe's answer");
    expect(text(c)).toMatch(/connection: keep-alive/i);
    const t0 = performance.now();
    await within(c.closed, bound, "the idle connection's close");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(limits.idleTimeoutMs - 50);
  });
});

describe("HTTP/1.1 early refusals", () => {
  // The request deadline is far away here: a close within the bound is the refusal's own.
  const patient = { ...testLimits, requestTimeoutMs: 30_000 };

  it("closes the connection after a 401 instead of reading an endless body", async () => {
    const server = await start({ limits: patient });
    const c = await connectTo(server.port);
    c.socket.write(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n" +
        "Content-Length: 1000000000\r\n\r\n{",
    );
    void c.drip("x".repeat(200), 10);
    await within(c.closed, bound, "the connection's close after the 401");
    expect(text(c)).toMatch(/^HTTP\/1\.1 401 /);
    expect(text(c)).toMatch(/\r\nconnection: close\r\n/i);
  });

  it("closes the connection after a 413 instead of reading the body", async () => {
    const server = await start({ limits: patient, doors: [testDoor(() => false)] });
    const c = await connectTo(server.port);
    c.socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${testKey}\r\n` +
        "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{",
    );
    void c.drip("x".repeat(200), 10);
    await within(c.closed, bound, "the connection's close after the 413");
    expect(text(c)).toMatch(/^HTTP\/1\.1 413 /);
    expect(text(c)).toMatch(/\r\nconnection: close\r\n/i);
  });

  it("keeps the connection of a refused request that has no body", async () => {
    const server = await start({ limits: patient });
    const c = await connectTo(server.port);
    c.socket.write("GET /v1/models HTTP/1.1\r\nHost: gw\r\n\r\n");
    await within(c.receivedText('"code":"unauthenticated"'), bound, "the 401");
    c.socket.write("GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n");
    await within(c.receivedText('{"status":"ok"}'), bound, "a second answer on the connection");
  });
});

describe("two Authorization headers", () => {
  const other = "sk-other-0123456789abcdef";

  it("get 400 over HTTP/1.1, whichever comes first", async () => {
    const server = await start();
    for (const [first, second] of [
      [testKey, other],
      [other, testKey],
    ]) {
      const c = await connectTo(server.port);
      c.socket.write(
        `GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${first}\r\n` +
          `authorization: Bearer ${second}\r\nConnection: close\r\n\r\n`,
      );
      await within(c.closed, bound, "the answer");
      expect(text(c)).toMatch(/^HTTP\/1\.1 400 /);
      expect(text(c)).toContain("more than one Authorization header");
    }
  });

  it("get 400 over h2c", async () => {
    const server = await start();
    const c = await connectTo(server.port);
    c.socket.write(
      h2cRequestBytes([
        [":method", "GET"],
        [":scheme", "http"],
        [":path", "/v1/models"],
        [":authority", "gw"],
        ["authorization", `Bearer ${testKey}`],
        ["authorization", `Bearer ${other}`],
      ]),
    );
    const status = async () => {
      for (;;) {
        const found = h2StatusOfStream1(c.received());
        if (found !== undefined) return found;
        await Promise.race([new Promise((resolve) => c.socket.once("data", resolve)), c.closed]);
        if (c.socket.destroyed) return h2StatusOfStream1(c.received());
      }
    };
    expect(await within(status(), bound, "the answer's HEADERS")).toBe(400);
  });
});
