import { connect, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";

/**
 * Raw sockets for the abuse tests: what well-behaved clients never send (a body dripped a byte
 * at a time, headers that never end, the same header twice). Every wait is bounded.
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
