import { once } from "node:events";
import { get } from "node:http";
import { connect as connectHttp2 } from "node:http2";
import { type AddressInfo, connect, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../../test/support/test-server.js";
import {
  type CleartextProtocol,
  createCleartextListener,
  HTTP2_PREFACE,
} from "./cleartext-listener.js";

/** Collects what a handed-over socket delivers until `length` bytes have arrived. */
const read = (socket: Socket, length: number) =>
  new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      if (total >= length) resolve(Buffer.concat(chunks));
    });
    socket.resume();
  });

let server: Server | undefined;
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  if (server) await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

/** Starts a bare listener that reports which protocol it detected and what bytes followed. */
const startListener = async (expectedLength: number, sniffTimeoutMs = 5000) => {
  let detected: (value: { protocol: CleartextProtocol; bytes: Buffer }) => void = () => {};
  const result = new Promise<{ protocol: CleartextProtocol; bytes: Buffer }>((resolve) => {
    detected = resolve;
  });
  const handOver = (protocol: CleartextProtocol) => async (socket: Socket) => {
    sockets.add(socket);
    detected({ protocol, bytes: await read(socket, expectedLength) });
  };
  server = createCleartextListener({
    sniffTimeoutMs,
    http1: handOver("http/1.1"),
    http2: handOver("h2c"),
    accepted: (socket) => sockets.add(socket),
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const client = connect((server.address() as AddressInfo).port, "127.0.0.1");
  sockets.add(client);
  await once(client, "connect");
  client.setNoDelay(true);
  return { client, result };
};

/** Writes `data` in pieces, waiting for each to leave before the next. */
const writeInPieces = async (client: Socket, pieces: Buffer[]) => {
  for (const piece of pieces) {
    await new Promise<void>((resolve) => client.write(piece, () => resolve()));
    // Let the server read each piece on its own.
    await new Promise((resolve) => setImmediate(resolve));
  }
};

describe("createCleartextListener", () => {
  it("hands a connection whose HTTP/2 preface arrives byte by byte to HTTP/2, bytes intact", async () => {
    const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    const sent = Buffer.concat([HTTP2_PREFACE, settings]);
    const { client, result } = await startListener(sent.length);
    await writeInPieces(
      client,
      [...HTTP2_PREFACE].map((b) => Buffer.from([b])),
    );
    await writeInPieces(client, [settings]);
    const { protocol, bytes } = await result;
    expect(protocol).toBe("h2c");
    expect(bytes.equals(sent)).toBe(true);
  });

  it("hands a connection to HTTP/1 at the first byte that differs from the preface", async () => {
    const sent = Buffer.from("PRI * HTTP/1.1\r\nHost: x\r\n\r\n", "latin1");
    const { client, result } = await startListener(sent.length);
    await writeInPieces(client, [sent.subarray(0, 10), sent.subarray(10)]);
    const { protocol, bytes } = await result;
    expect(protocol).toBe("http/1.1");
    expect(bytes.equals(sent)).toBe(true);
  });

  it("decides for HTTP/1 on a single first byte and loses nothing after it", async () => {
    const sent = Buffer.from("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "latin1");
    const { client, result } = await startListener(sent.length);
    await writeInPieces(client, [sent.subarray(0, 1), sent.subarray(1)]);
    const { protocol, bytes } = await result;
    expect(protocol).toBe("http/1.1");
    expect(bytes.equals(sent)).toBe(true);
  });

  it("drops a connection that sends nothing", async () => {
    const { client } = await startListener(1, 20);
    await once(client, "close");
    expect(client.destroyed).toBe(true);
  });
});

describe("one cleartext port", () => {
  let ts: TestServer | undefined;
  afterEach(async () => {
    await ts?.server.close();
    ts = undefined;
  });

  it("serves HTTP/1.1 and HTTP/2 with prior knowledge side by side", async () => {
    ts = await startTestServer();
    const url = ts.server.url;

    const http1Version = await new Promise<string>((resolve, reject) => {
      get(`${url}/healthz`, { agent: false }, (res) => {
        res.resume();
        resolve(res.httpVersion);
      }).on("error", reject);
    });
    expect(http1Version).toBe("1.1");

    const session = connectHttp2(url);
    try {
      const stream = session.request({ ":path": "/healthz" });
      const [headers] = (await once(stream, "response")) as [Record<string, unknown>];
      stream.setEncoding("utf8");
      let body = "";
      for await (const chunk of stream) body += chunk;
      expect(headers[":status"]).toBe(200);
      expect(JSON.parse(body)).toEqual({ status: "ok" });
    } finally {
      session.close();
    }
  });
});
