import type { ServerHttp2Session } from "node:http2";
import type { Socket } from "node:net";
import type { NodeRequest, NodeResponse } from "./http-response.js";

/**
 * What a tracked connection is known to be: `pending` (no protocol chosen yet, nothing in
 * flight: closed as soon as draining starts), `http1`, `http2` (closed through its session), or
 * `transport` (a TCP socket under TLS: left to the TLS socket above it until the end).
 */
export type ConnectionPhase = "pending" | "http1" | "http2" | "transport";

/**
 * Knows every open connection, HTTP/2 session and in-flight request of a server, so that a
 * shutdown can drain them politely and then force the rest.
 */
export interface ConnectionTracker {
  /** Registers a connection, or records the protocol it turned out to speak. */
  track(socket: Socket, phase: ConnectionPhase): void;
  /** Registers an HTTP/2 session; its socket is closed through the session. */
  trackSession(session: ServerHttp2Session): void;
  /**
   * Registers a request; call the returned function once, when its response closes (the server
   * has one close listener per response and calls it from there).
   */
  trackRequest(req: NodeRequest, res: NodeResponse): () => void;
  /** Requests whose response has not closed yet. */
  readonly activeRequests: number;
  /**
   * Starts draining: HTTP/2 sessions get GOAWAY (open streams may finish, new ones are
   * refused), idle HTTP/1 connections and connections that have not chosen a protocol are
   * closed, in-flight HTTP/1 responses go out with `Connection: close`, and every HTTP/1
   * connection is ended once its last request completes.
   */
  drain(): void;
  /** Resolves once no request is in flight. */
  idle(): Promise<void>;
  /** Destroys every connection and session at once. */
  destroyAll(): void;
}

/** Options of {@link createConnectionTracker}. */
export interface ConnectionTrackerOptions {
  /**
   * Called once per tracked request when its response closes, however it ended (answered,
   * failed, reset by the client): where per-request counts are released.
   */
  requestDone?: (req: NodeRequest, res: NodeResponse) => void;
}

/** Creates an empty {@link ConnectionTracker}. */
export function createConnectionTracker(options: ConnectionTrackerOptions = {}): ConnectionTracker {
  const { requestDone: onRequestDone } = options;
  const phases = new Map<Socket, ConnectionPhase>();
  /** In-flight requests per HTTP/1 connection (pipelining may queue more than one). */
  const http1Active = new Map<Socket, number>();
  const http1Responses = new Set<NodeResponse>();
  const sessions = new Set<ServerHttp2Session>();
  let activeRequests = 0;
  let draining = false;
  let idleWaiters: (() => void)[] = [];

  const endIfIdle = (socket: Socket) => {
    // end(), not destroy(): the last response may still sit in the socket's write buffer.
    if ((http1Active.get(socket) ?? 0) === 0) socket.end();
  };

  const track = (socket: Socket, phase: ConnectionPhase) => {
    if (!phases.has(socket)) {
      socket.once("close", () => {
        phases.delete(socket);
        http1Active.delete(socket);
      });
    }
    phases.set(socket, phase);
    if (!draining) return;
    if (phase === "pending") socket.destroy();
    else if (phase === "http1") endIfIdle(socket);
  };

  const requestDone = (req: NodeRequest, socket: Socket | undefined, res: NodeResponse) => {
    activeRequests--;
    onRequestDone?.(req, res);
    if (socket) {
      http1Responses.delete(res);
      const left = (http1Active.get(socket) ?? 1) - 1;
      if (phases.has(socket)) http1Active.set(socket, left);
      if (draining && left === 0) socket.end();
    }
    if (activeRequests === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const wake of waiters) wake();
    }
  };

  return {
    track,

    trackSession(session) {
      sessions.add(session);
      session.once("close", () => sessions.delete(session));
      if (draining) session.close();
    },

    trackRequest(req, res) {
      activeRequests++;
      const socket = req.httpVersionMajor === 1 ? (req.socket as Socket) : undefined;
      if (socket) {
        if (phases.get(socket) !== "http1") track(socket, "http1");
        http1Active.set(socket, (http1Active.get(socket) ?? 0) + 1);
        http1Responses.add(res);
        if (draining) res.setHeader("connection", "close");
      }
      return () => requestDone(req, socket, res);
    },

    get activeRequests() {
      return activeRequests;
    },

    drain() {
      if (draining) return;
      draining = true;
      for (const session of sessions) session.close();
      for (const res of http1Responses) {
        if (!res.headersSent) res.setHeader("connection", "close");
      }
      for (const [socket, phase] of phases) {
        if (phase === "pending") socket.destroy();
        else if (phase === "http1") endIfIdle(socket);
      }
    },

    idle() {
      if (activeRequests === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },

    destroyAll() {
      for (const session of sessions) session.destroy();
      for (const socket of phases.keys()) socket.destroy();
    },
  };
}
