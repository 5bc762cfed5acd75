import { createServer, type Server, type Socket } from "node:net";

/** The client connection preface that opens every HTTP/2 connection (RFC 9113 §3.4). */
export const HTTP2_PREFACE: Buffer = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** The protocol a cleartext connection speaks, as told by its first bytes. */
export type CleartextProtocol = "http/1.1" | "h2c";

/**
 * Watches the first bytes of a cleartext connection to tell HTTP/2 with prior knowledge (h2c,
 * what gRPC clients send) from HTTP/1.x, then puts those bytes back and calls `onDetected` once,
 * with the socket paused. A preface split over several packets is reassembled; the first byte
 * that differs from the preface decides for HTTP/1.x. A peer that sends nothing within
 * `timeoutMs`, ends, or fails before a decision is dropped.
 */
export function sniffProtocol(
  socket: Socket,
  timeoutMs: number,
  onDetected: (protocol: CleartextProtocol) => void,
): void {
  let head: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const n = Math.min(head.length, HTTP2_PREFACE.length);
    if (head.compare(HTTP2_PREFACE, 0, n, 0, n) !== 0) decide("http/1.1");
    else if (head.length >= HTTP2_PREFACE.length) decide("h2c");
  };
  // Nothing has been read that anybody waits for: a peer that goes away or stalls here is
  // simply dropped.
  const drop = () => socket.destroy();
  const decide = (protocol: CleartextProtocol) => {
    socket.off("data", onData);
    socket.off("end", drop);
    socket.off("error", drop);
    socket.off("timeout", drop);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(head);
    onDetected(protocol);
  };
  socket.on("data", onData);
  socket.once("end", drop);
  socket.once("error", drop);
  socket.once("timeout", drop);
  socket.setTimeout(timeoutMs);
}

/** Options of {@link createCleartextListener}. */
export interface CleartextListenerOptions {
  /** Receives each connection that speaks HTTP/1.x (e.g. `httpServer.emit("connection", s)`). */
  http1: (socket: Socket) => void;
  /** Receives each connection that opened with the HTTP/2 preface. */
  http2: (socket: Socket) => void;
  /** Called for every accepted connection, before its protocol is known. */
  accepted?: (socket: Socket) => void;
  /** How long a new connection may stay silent, in milliseconds. */
  sniffTimeoutMs: number;
}

/**
 * Creates the one TCP listener for cleartext HTTP/1.1 and h2c. Node has no server that speaks
 * both without TLS, so each connection is sniffed ({@link sniffProtocol}) and handed to the
 * matching Node server. The HTTP/1 socket is resumed after the hand-over (the server only
 * listens for `data`), while the HTTP/2 session reads the bytes put back itself
 * (nodejs/node#35475).
 */
export function createCleartextListener(options: CleartextListenerOptions): Server {
  return createServer({ noDelay: true }, (socket) => {
    options.accepted?.(socket);
    sniffProtocol(socket, options.sniffTimeoutMs, (protocol) => {
      if (protocol === "h2c") {
        options.http2(socket);
      } else {
        options.http1(socket);
        socket.resume();
      }
    });
  });
}
