import { createServer as createHttp1Server, type Server as Http1Server } from "node:http";
import {
  createServer as createHttp2Server,
  createSecureServer,
  type ServerHttp2Session,
} from "node:http2";
import type { AddressInfo, Server, Socket } from "node:net";
import { createCleartextListener } from "./cleartext-listener.js";
import { type ConnectionLimits, deadlineCheckIntervalMs } from "./connection-limits.js";
import type { ConnectionPhase } from "./connection-tracker.js";
import { GatewayResponse } from "./gateway-response.js";
import type { NodeRequest, NodeResponse } from "./http-response.js";

/** Largest request header block accepted (HTTP/1.1: 431; HTTP/2: the stream is refused). */
const maxHeaderBytes = 16 * 1024;

/** Options of {@link createGatewayListener}. */
export interface GatewayListenerOptions {
  /** PEM certificate and key: TLS with ALPN (`h2`, `http/1.1`); else cleartext HTTP/1.1 + h2c. */
  tls: { cert: string; key: string } | undefined;
  limits: ConnectionLimits;
  /** Every request, on every protocol. */
  onRequest: (req: NodeRequest, res: NodeResponse) => void;
  /** Each connection, when accepted and again when its protocol is known. */
  track: (socket: Socket, phase: ConnectionPhase) => void;
  /** Each HTTP/2 session. */
  onSession: (session: ServerHttp2Session) => void;
}

/** The gateway's listening socket and the Node servers behind it. */
export interface GatewayListener {
  /** The server to `listen()` on and `close()`. */
  server: Server;
  /** Stops the HTTP/1 deadline checks; call once the server is closed or failed to listen. */
  dispose(): void;
}

/** The HTTP/1 deadlines Node checks itself (`headersTimeout`, `requestTimeout`, keep-alive). */
function http1Timeouts(limits: ConnectionLimits) {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    connectionsCheckingInterval: deadlineCheckIntervalMs(limits),
  };
}

/**
 * Creates the Node servers for one port with the connection limits applied: HTTP/1.1 gets
 * Node's headers, request and keep-alive timeouts; HTTP/2 advertises `maxConcurrentStreams` in
 * its SETTINGS (its idle and request deadlines are `http2-timeouts.ts`'s); a TLS handshake, and
 * a cleartext connection's first bytes, must come within the headers timeout.
 */
export function createGatewayListener(options: GatewayListenerOptions): GatewayListener {
  const { limits, onRequest, track, onSession } = options;
  const settings = {
    maxHeaderListSize: maxHeaderBytes,
    maxConcurrentStreams: limits.maxConcurrentStreams,
  };
  if (options.tls) {
    const secure = createSecureServer({
      Http1ServerResponse: GatewayResponse,
      cert: options.tls.cert,
      key: options.tls.key,
      allowHTTP1: true,
      ALPNProtocols: ["h2", "http/1.1"],
      settings,
      handshakeTimeout: limits.headersTimeoutMs,
    });
    // With allowHTTP1, Node serves HTTP/1.1 from these fields as an HTTP/1 server would (its
    // defaults: 60 s headers, 5 min request, no keep-alive timeout at all). The deadline checks
    // start on "listening" and stop on close.
    Object.assign(secure, http1Timeouts(limits));
    secure.on("request", onRequest);
    secure.on("connection", (socket: Socket) => track(socket, "transport"));
    secure.on("secureConnection", (socket) =>
      track(socket, socket.alpnProtocol === "h2" ? "http2" : "http1"),
    );
    secure.on("session", onSession);
    return { server: secure, dispose: () => {} };
  }
  const h1: Http1Server = createHttp1Server(
    { ServerResponse: GatewayResponse, maxHeaderSize: maxHeaderBytes, ...http1Timeouts(limits) },
    onRequest,
  );
  const h2 = createHttp2Server({ settings }, onRequest);
  h2.on("session", onSession);
  const server = createCleartextListener({
    sniffTimeoutMs: limits.headersTimeoutMs,
    accepted: (socket) => track(socket, "pending"),
    http1: (socket) => {
      track(socket, "http1");
      h1.emit("connection", socket);
    },
    http2: (socket) => {
      track(socket, "http2");
      h2.emit("connection", socket);
    },
  });
  // Node arms its headersTimeout / requestTimeout checks of HTTP/1 connections on "listening";
  // this server never listens itself, it is fed connections. close() disarms them again.
  h1.emit("listening");
  return { server, dispose: () => h1.close() };
}

/**
 * Starts `server` listening on `host`:`port`; resolves with the bound port.
 *
 * @throws Error `cannot listen on HOST:PORT (CODE)`, with the system error as its cause, when
 *   the address cannot be bound.
 */
export function listenOn(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      server.off("listening", onListening);
      reject(new Error(`cannot listen on ${host}:${port} (${errorName(e)})`, { cause: e }));
    };
    const onListening = () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ host, port });
  });
}

/** `host` as it goes into a URL: a wildcard address as 127.0.0.1, IPv6 in brackets. */
export function displayHost(host: string): string {
  if (host === "" || host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

/** What a log line may say about an error: its system code, else its class name. */
export function errorName(e: unknown): string {
  if (e instanceof Error && "code" in e && typeof e.code === "string") return e.code;
  return e instanceof Error ? e.name : typeof e;
}
