import { type IncomingHttpHeaders, request } from "node:http";
import type { ClientHttp2Session, OutgoingHttpHeaders } from "node:http2";
import { connect, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";

/**
 * HTTP below the clients: raw sockets for the abuse tests, what well-behaved clients never send
 * (a body dripped a byte at a time, headers that never end, the same header twice; every wait is
 * bounded), and plain `node:http` requests that send browser-only headers as given.
 */

/**
 * Resolves with `promise`'s value, or rejects with "`what` did not happen within `ms` ms" once
 * `ms` have passed. The timer is cleared either way.
 */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A raw TCP connection that records what it receives. */
export interface RawConnection {
  socket: Socket;
  /** Everything received so far, as latin1 text (HTTP/1.1) or bytes (HTTP/2). */
  received(): Buffer;
  /** Resolves once the server closed or reset the connection. */
  closed: Promise<void>;
  /** Resolves once the bytes received so far include `text`. */
  receivedText(text: string): Promise<void>;
  /**
   * Writes `data` one byte at a time, `intervalMs` apart, until it is all sent or the connection
   * closes; resolves with the number of bytes written. At most `data.length` writes.
   */
  drip(data: string, intervalMs: number): Promise<number>;
}

/**
 * Opens a TCP connection to 127.0.0.1:`port`, or a TLS one (ALPN `http/1.1`) trusting `ca` when
 * given; resolves once connected (for TLS: once the handshake is done).
 */
export async function rawConnect(port: number, ca?: string): Promise<RawConnection> {
  const socket =
    ca === undefined
      ? connect(port, "127.0.0.1")
      : connectTls({
          port,
          host: "127.0.0.1",
          ca,
          servername: "localhost",
          ALPNProtocols: ["http/1.1"],
        });
  socket.setNoDelay(true);
  const chunks: Buffer[] = [];
  const waiters: (() => void)[] = [];
  socket.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    for (const wake of waiters.splice(0)) wake();
  });
  // A reset after the server answered is expected in these tests: it counts as closed.
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once(ca === undefined ? "connect" : "secureConnect", resolve);
    socket.once("error", reject);
  });
  const received = () => Buffer.concat(chunks);
  return {
    socket,
    received,
    closed,
    async receivedText(text) {
      while (!received().toString("latin1").includes(text)) {
        if (socket.destroyed) throw new Error(`connection closed before ${JSON.stringify(text)}`);
        await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), closed]);
      }
    },
    async drip(data, intervalMs) {
      let sent = 0;
      for (const byte of data) {
        if (socket.destroyed || socket.writableEnded) break;
        socket.write(byte);
        sent++;
        await Promise.race([new Promise((resolve) => setTimeout(resolve, intervalMs)), closed]);
      }
      return sent;
    },
  };
}

// HTTP/2 by hand (RFC 9113 frames, RFC 7541 literals): Node's client refuses to send a header
// that may appear once (authorization) twice, which is what the server must be tested with.

/** The client connection preface (RFC 9113 §3.4). */
const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** One HTTP/2 frame: 9-byte header, then `payload`. */
function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** A literal header field without indexing, new name, no Huffman (RFC 7541 §6.2.2). */
function literal(name: string, value: string): Buffer {
  const string = (s: string) => {
    const bytes = Buffer.from(s, "latin1");
    if (bytes.length > 126) throw new Error("header too long for this encoder");
    return Buffer.concat([Buffer.from([bytes.length]), bytes]);
  };
  return Buffer.concat([Buffer.from([0]), string(name), string(value)]);
}

/**
 * The bytes that open an h2c connection and send one request on stream 1 with exactly
 * `headers` (pseudo-headers first, in order, repeats kept) and no body.
 */
export function h2cRequestBytes(headers: readonly (readonly [string, string])[]): Buffer {
  const block = Buffer.concat(headers.map(([name, value]) => literal(name, value)));
  const settings = frame(0x4, 0, 0, Buffer.alloc(0));
  // HEADERS with END_STREAM (0x1) and END_HEADERS (0x4).
  return Buffer.concat([preface, settings, frame(0x1, 0x5, 1, block)]);
}

/**
 * The `:status` of the first HEADERS frame on stream 1 in `bytes`, when the server sent it as
 * an entry of the HPACK static table (200, 204, 206, 304, 400, 404 and 500 are there; RFC 7541
 * Appendix A); `undefined` when no such frame has arrived yet, `"other"` for any other status.
 */
export function h2StatusOfStream1(bytes: Buffer): number | "other" | undefined {
  const statuses: Record<number, number> = {
    8: 200,
    9: 204,
    10: 206,
    11: 304,
    12: 400,
    13: 404,
    14: 500,
  };
  let at = 0;
  while (at + 9 <= bytes.length) {
    const length = bytes.readUIntBE(at, 3);
    const type = bytes[at + 3];
    const stream = bytes.readUInt32BE(at + 5) & 0x7fffffff;
    if (at + 9 + length > bytes.length) return undefined;
    if (type === 0x1 && stream === 1) {
      const first = bytes[at + 9] ?? 0;
      // An indexed field (RFC 7541 §6.1) is 1xxxxxxx with the index in the low 7 bits.
      return (first & 0x80) !== 0 ? (statuses[first & 0x7f] ?? "other") : "other";
    }
    at += 9 + length;
  }
  return undefined;
}

/** A plain HTTP/1.1 response, body as text. */
export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * Sends one HTTP/1.1 request on a fresh connection (`Connection: close`) with `node:http`, so
 * that browser-only headers such as `Origin` go out as given.
 */
export function rawRequest(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: init.method ?? "GET", headers: init.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(init.body);
  });
}

/** An HTTP/2 response: its headers (`:status` among them) and its body as text. */
export interface H2Response {
  headers: IncomingHttpHeaders & { ":status"?: number };
  body: string;
}

/**
 * Sends one request on `session` (a stream of an HTTP/2 connection) with `headers` and `body`;
 * resolves once the response ended, rejects on a stream error. Bound it with {@link within}.
 */
export function h2Request(
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  body?: string | Buffer,
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers);
    let got: H2Response["headers"] = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      got = h;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve({ headers: got, body: Buffer.concat(chunks).toString("utf8") }));
    stream.on("error", reject);
    stream.end(body);
  });
}
