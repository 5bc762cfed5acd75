import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** One request as the scripted server saw it. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

/** A handler answers one request; it may write slowly, stall or destroy the socket. */
export type Handler = (
  req: SeenRequest,
  res: ServerResponse,
  socket: Socket,
) => void | Promise<void>;

/**
 * A tiny HTTP server on 127.0.0.1 whose answers each test scripts: handlers are used in order,
 * the last one repeats. Records every request. `close()` destroys open sockets, so a test that
 * leaves a stalled stream behind still tears down cleanly.
 */
export async function startScriptedServer(...handlers: Handler[]) {
  return startScriptedServerOn(0, ...handlers);
}

/** Like {@link startScriptedServer}, on a given port (to bring a refused port back to life). */
export async function startScriptedServerOn(port: number, ...handlers: Handler[]) {
  const seen: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  let next = 0;
  let openResponses = 0;
  const server = createServer(async (req, res) => {
    openResponses++;
    res.on("close", () => openResponses--);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const request: SeenRequest = {
      method: req.method ?? "",
      url: req.url ?? "",
      headers: req.headers,
      body: Buffer.concat(chunks).toString("utf8"),
    };
    seen.push(request);
    const handler = handlers[Math.min(next++, handlers.length - 1)];
    await handler?.(request, res, req.socket);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    seen,
    /**
     * Responses whose client has not gone away yet. A client that stops reading a stream and
     * releases it shows here at once (the server's socket itself may linger half-open).
     */
    openResponses: () => openResponses,
    setHandlers(...h: Handler[]) {
      handlers.splice(0, handlers.length, ...h);
      next = 0;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Answers JSON with the given status and headers. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Handler {
  return (_req, res) => {
    res.writeHead(status, {
      "content-type": "application/json",
      "x-tt-logid": "20240101000000TESTLOGID0000000000",
      ...headers,
    });
    res.end(JSON.stringify(body));
  };
}

/** Answers an event stream with the given raw text, then ends. */
export function sse(text: string, status = 200): Handler {
  return (_req, res) => {
    res.writeHead(status, { "content-type": "text/event-stream" });
    res.end(text);
  };
}
