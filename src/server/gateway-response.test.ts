import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect as connectHttp2, createServer as createHttp2Server } from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import { createTestCertificate } from "../../test/support/certificates.js";
import { h2Request, rawConnect, within } from "../../test/support/raw-http.js";
import { addHeader, GatewayResponse } from "./gateway-response.js";
import type { NodeResponse } from "./http-response.js";
import { createGatewayListener, listenOn } from "./listeners.js";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** What one HTTP/1.1 GET through a server with {@link GatewayResponse} answers: its head's lines. */
async function head(handler: Handler): Promise<string[]> {
  server = createServer({ ServerResponse: GatewayResponse }, handler);
  const port = await listenOn(server, "127.0.0.1", 0);
  const conn = await rawConnect(port);
  conn.socket.write("GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
  await within(conn.closed, 5000, "the response");
  const text = conn.received().toString("latin1");
  return text.slice(0, text.indexOf("\r\n\r\n")).split("\r\n");
}

/** Adds the gateway's three headers. */
function addOwn(res: NodeResponse): void {
  addHeader(res, "x-request-id", "req-1");
  addHeader(res, "vary", "Origin");
  addHeader(res, "x-ratelimit-remaining-requests", "9");
}

const own = ["x-request-id: req-1", "vary: Origin", "x-ratelimit-remaining-requests: 9"];

describe("GatewayResponse", () => {
  it("writes the added headers first, then those given to writeHead, each once", async () => {
    const lines = await head((_req, res) => {
      addOwn(res);
      res.writeHead(201, { "content-type": "text/plain", "content-length": "2" });
      res.end("ok");
    });
    expect(lines[0]).toBe("HTTP/1.1 201 Created");
    expect(lines.slice(1, 6)).toEqual([...own, "content-type: text/plain", "content-length: 2"]);
  });

  it("takes a list, pairs and a reason phrase as writeHead does", async () => {
    const listed = await head((_req, res) => {
      addOwn(res);
      res.writeHead(200, "Fine", ["content-type", "text/plain", "set-cookie", ["a=1", "b=2"]]);
      res.end();
    });
    expect(listed[0]).toBe("HTTP/1.1 200 Fine");
    expect(listed.slice(1, 7)).toEqual([
      ...own,
      "content-type: text/plain",
      "set-cookie: a=1",
      "set-cookie: b=2",
    ]);
    const paired = await head((_req, res) => {
      addOwn(res);
      (res as GatewayResponse).writeHead(200, [["content-type", "text/plain"]]);
      res.end();
    });
    expect(paired.slice(1, 5)).toEqual([...own, "content-type: text/plain"]);
  });

  it("adds them to the head Node writes itself at the first write", async () => {
    const lines = await head((_req, res) => {
      addOwn(res);
      res.statusCode = 404;
      res.end("gone");
    });
    expect(lines[0]).toBe("HTTP/1.1 404 Not Found");
    expect(lines.slice(1, 4)).toEqual(own);
    // Node's own headers, as without anything added.
    expect(lines.map((l) => l.toLowerCase())).toContain("content-length: 4");
  });

  it("keeps headers set one by one, and writeHead's taking precedence over them", async () => {
    const lines = await head((_req, res) => {
      addOwn(res);
      res.setHeader("access-control-allow-origin", "https://app.example");
      res.setHeader("content-type", "text/html");
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
    expect(lines.filter((l) => l.startsWith("content-type"))).toEqual([
      "content-type: application/json",
    ]);
    for (const line of [...own, "access-control-allow-origin: https://app.example"]) {
      expect(lines.filter((l) => l === line)).toHaveLength(1);
    }
  });

  it("refuses a value that would split the response, and sends no head with it", async () => {
    let thrown: unknown;
    const lines = await head((_req, res) => {
      addHeader(res, "x-request-id", "a\r\nset-cookie: stolen=1");
      try {
        res.writeHead(200);
      } catch (err) {
        thrown = err;
      }
      res.destroy();
    });
    expect((thrown as { code?: string }).code).toBe("ERR_INVALID_CHAR");
    expect(lines.join("\n")).not.toContain("stolen");
  });

  it("sets the header at once on an HTTP/2 response", async () => {
    const h2 = createHttp2Server((_req, res) => {
      addOwn(res);
      res.end("ok");
    });
    try {
      const port = await listenOn(h2, "127.0.0.1", 0);
      const client = connectHttp2(`http://127.0.0.1:${port}`);
      const { headers } = await within(
        h2Request(client, { ":path": "/" }),
        5000,
        "the HTTP/2 response",
      );
      client.close();
      expect(headers["x-request-id"]).toBe("req-1");
      expect(headers.vary).toBe("Origin");
      expect(headers["x-ratelimit-remaining-requests"]).toBe("9");
    } finally {
      await new Promise((resolve) => h2.close(resolve));
    }
  });
});

describe("the gateway's listeners", () => {
  it.each([
    ["cleartext", false],
    ["TLS", true],
  ] as const)("answer HTTP/1.1 over %s with a GatewayResponse", async (_name, tls) => {
    const certificate = tls ? createTestCertificate() : undefined;
    let seen: NodeResponse | undefined;
    const listener = createGatewayListener({
      tls: certificate,
      limits: {
        headersTimeoutMs: 5000,
        requestTimeoutMs: 5000,
        idleTimeoutMs: 5000,
        maxConcurrentStreams: 10,
        maxStreamsPerKey: 10,
      },
      onRequest(_req, res) {
        seen = res;
        addHeader(res, "x-request-id", "req-1");
        res.end("ok");
      },
      track: () => {},
      onSession: () => {},
    });
    try {
      const port = await listenOn(listener.server, "127.0.0.1", 0);
      const conn = await rawConnect(port, certificate?.cert);
      conn.socket.write("GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
      await within(conn.closed, 5000, "the response");
      expect(seen).toBeInstanceOf(GatewayResponse);
      expect(conn.received().toString("latin1")).toContain("\r\nx-request-id: req-1\r\n");
    } finally {
      listener.dispose();
      await new Promise((resolve) => listener.server.close(resolve));
    }
  });
});
