import { afterEach, describe, expect, it } from "vitest";
import { readEvents } from "../../test/support/event-streams.js";
import {
  json,
  sse,
  startScriptedServer,
  startScriptedServerOn,
} from "../../test/support/scripted-server.js";
import { systemClock } from "./clock.js";
import { CozeError } from "./errors.js";
import type { StreamResponse } from "./event-stream.js";
import { type AccessTokens, type CallInfo, type CallTracer, createCozeHttp } from "./http.js";
import { createPools, type Pools } from "./pools.js";
import { createRetryBudget } from "./retry.js";

/**
 * Hands out tok-1, tok-2, … and records invalidations. Like the token cache, it answers from its
 * cache at once while it holds a token, and only through `getToken` after an invalidation.
 */
function fakeTokens(): AccessTokens & { invalidated: string[]; issued: number; fetched: number } {
  let current = "tok-1";
  let cached = true;
  const self = {
    invalidated: [] as string[],
    issued: 1,
    fetched: 0,
    cachedToken() {
      return cached ? current : undefined;
    },
    async getToken() {
      self.fetched++;
      cached = true;
      return current;
    },
    invalidate(token: string) {
      self.invalidated.push(token);
      if (token === current) {
        current = `tok-${++self.issued}`;
        cached = false;
      }
    },
  };
  return self;
}

let server: Awaited<ReturnType<typeof startScriptedServer>> | undefined;
let pools: Pools | undefined;
afterEach(async () => {
  await pools?.destroy();
  await server?.close();
  server = undefined;
  pools = undefined;
});

async function setup(...handlers: Parameters<typeof startScriptedServer>) {
  return setupWith({}, ...handlers);
}

async function setupWith(
  extra: Partial<Parameters<typeof createCozeHttp>[0]>,
  ...handlers: Parameters<typeof startScriptedServer>
) {
  server = await startScriptedServer(...handlers);
  pools = createPools();
  const tokens = fakeTokens();
  const calls: CallInfo[] = [];
  const http = createCozeHttp({
    baseUrl: server.url,
    tokens,
    pools,
    requestTimeoutMs: 2_000,
    streamIdleTimeoutMs: 500,
    onCall: (c) => calls.push(c),
    retry: { backoff: { initialMs: 1, maxMs: 5, jitter: 0 } },
    ...extra,
  });
  return { http, tokens, calls, server };
}

async function failure(p: Promise<unknown>): Promise<CozeError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CozeError);
  return err as CozeError;
}

describe("CozeHttp.json", () => {
  it("sends the bearer token and JSON body, and returns the decoded envelope", async () => {
    const { http, server } = await setup(json(200, { code: 0, msg: "", data: { id: "7" } }));
    const res = await http.json({
      step: "chat.create",
      method: "POST",
      path: "/v3/chat",
      query: { conversation_id: "123", skip: undefined },
      body: { bot_id: "1" },
    });
    expect(res.body.data).toEqual({ id: "7" });
    expect(res.logId).toBe("20240101000000TESTLOGID0000000000");
    expect(server.seen[0]?.url).toBe("/v3/chat?conversation_id=123");
    expect(server.seen[0]?.headers.authorization).toBe("Bearer tok-1");
    expect(server.seen[0]?.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(server.seen[0]?.body ?? "")).toEqual({ bot_id: "1" });
  });

  it("treats a body without code as success, as every SDK does (async run shape)", async () => {
    const { http } = await setup(json(200, { execute_id: "74248231312884", msg: "" }));
    const res = await http.json({ step: "workflow.start", method: "POST", path: "/x" });
    expect(res.body.execute_id).toBe("74248231312884");
  });

  it("turns a non-zero code into a typed error with Coze's code, message and log id", async () => {
    const { http } = await setup(
      json(200, { code: 4200, msg: "workflow not found", detail: { logid: "BODYLOG" } }),
    );
    const err = await failure(http.json({ step: "workflow.run", method: "POST", path: "/x" }));
    expect(err.code).toBe("not_found");
    expect(err.cozeCode).toBe(4200);
    expect(err.cozeMessage).toBe("workflow not found");
    expect(err.logId).toBe("BODYLOG");
    expect(err.message).toBe("workflow.run: not found (Coze code 4200)");
  });

  it("reports 429 as rate_limited with the Retry-After delay", async () => {
    const { http } = await setup(
      json(429, { code: 4013, msg: "rate limit" }, { "retry-after": "7" }),
    );
    const err = await failure(http.json({ step: "chat.retrieve", method: "GET", path: "/x" }));
    expect(err.code).toBe("rate_limited");
    expect(err.retryAfterMs).toBe(7_000);
  });

  it("reports a 5xx with a non-JSON body as unavailable without the body in the message", async () => {
    const { http } = await setup((_req, res) => {
      res.writeHead(502, { "content-type": "text/html" });
      res.end("<html>secret upstream page</html>");
    });
    const err = await failure(http.json({ step: "chat.retrieve", method: "GET", path: "/x" }));
    expect(err.code).toBe("unavailable");
    expect(err.status).toBe(502);
    expect(err.message).not.toContain("secret");
  });

  it("invalidates a rejected token and retries exactly once with a fresh one", async () => {
    const { http, tokens, server, calls } = await setup(
      json(401, { code: 4100, msg: "authentication is invalid" }),
      json(200, { code: 0, data: { ok: true } }),
    );
    const res = await http.json({ step: "chat.retrieve", method: "GET", path: "/x" });
    expect(res.body.data).toEqual({ ok: true });
    expect(tokens.invalidated).toEqual(["tok-1"]);
    expect(server.seen.map((r) => r.headers.authorization)).toEqual([
      "Bearer tok-1",
      "Bearer tok-2",
    ]);
    // The first token came from the cache at once; only the replacement was fetched.
    expect(tokens.fetched).toBe(1);
    expect(calls).toMatchObject([{ outcome: "ok", retriedAuth: true }]);
  });

  it("retries a 4100 answered with HTTP 200 too, but gives up after the second rejection", async () => {
    const { http, tokens, server } = await setup(json(200, { code: 4100, msg: "bad" }));
    const err = await failure(http.json({ step: "chat.retrieve", method: "GET", path: "/x" }));
    expect(err.code).toBe("authentication");
    expect(server.seen).toHaveLength(2);
    expect(tokens.invalidated).toEqual(["tok-1"]);
  });

  it("never sends a write again after a 5xx: the run may have started", async () => {
    const { http, server } = await setup(json(503, { code: 5000, msg: "busy" }));
    await failure(http.json({ step: "workflow.run", method: "POST", path: "/x" }));
    expect(server.seen).toHaveLength(1);
  });

  it("never sends a call again because the report of its success failed", async () => {
    const { http, server } = await setupWith(
      {
        onCall: () => {
          throw new Error("broken metrics");
        },
      },
      json(200, { code: 0, data: { ok: true } }),
    );
    await expect(http.json({ step: "chat.retrieve", method: "GET", path: "/x" })).rejects.toThrow(
      "broken metrics",
    );
    expect(server.seen).toHaveLength(1);
  });

  it("retries a read on 5xx and 429 with backoff until it succeeds", async () => {
    const { http, server, calls } = await setup(
      json(502, { code: 5000, msg: "bad gateway" }),
      json(429, { code: 4013, msg: "slow down" }, { "retry-after": "0" }),
      json(200, { code: 0, data: [{ execute_status: "Success" }] }),
    );
    const res = await http.json({ step: "workflow.history", method: "GET", path: "/x" });
    expect(res.body.data).toEqual([{ execute_status: "Success" }]);
    expect(server.seen).toHaveLength(3);
    expect(calls).toMatchObject([{ outcome: "ok", retries: 2 }]);
  });

  it("sends a traced call's traceparent on every attempt and ends its span once", async () => {
    const { http, server } = await setup(
      json(401, { code: 4100, msg: "authentication is invalid" }),
      json(502, { code: 5000, msg: "bad gateway" }, { "x-tt-logid": "log-2" }),
      json(200, { code: 0, data: { ok: true } }, { "x-tt-logid": "log-3" }),
    );
    const events: string[] = [];
    const ended: CallInfo[] = [];
    const tracer: CallTracer = {
      call(step, method) {
        events.push(`call ${method} ${step}`);
        return {
          traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
          tracestate: "rojo=1",
          token() {
            events.push("token");
            return (failed) => events.push(`token ${failed ? "failed" : "ok"}`);
          },
          end: (info) => ended.push(info),
        };
      },
    };
    const trace = { cozeLogIds: [], tracer };
    await http.json({ step: "workflow.history", method: "GET", path: "/x", trace });
    expect(server.seen.map((r) => [r.headers.traceparent, r.headers.tracestate])).toEqual(
      Array(3).fill(["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=1"]),
    );
    // The rejected token's replacement was not in the cache: that wait is part of the span.
    expect(events).toEqual(["call GET workflow.history", "token", "token ok"]);
    expect(ended).toMatchObject([
      { step: "workflow.history", outcome: "ok", logId: "log-3", retries: 1 },
    ]);
  });

  it("sends no trace context for a call without a tracer", async () => {
    const { http, server } = await setup(json(200, { code: 0, data: {} }));
    await http.json({
      step: "chat.retrieve",
      method: "GET",
      path: "/x",
      trace: { cozeLogIds: [] },
    });
    expect(server.seen[0]?.headers.traceparent).toBeUndefined();
    expect(server.seen[0]?.headers.tracestate).toBeUndefined();
  });

  it("stops after maxAttempts and reports the last failure", async () => {
    const { http, server, calls } = await setup(json(503, { code: 5000, msg: "down" }));
    const err = await failure(http.json({ step: "chat.retrieve", method: "GET", path: "/x" }));
    expect(err.code).toBe("unavailable");
    expect(server.seen).toHaveLength(3);
    expect(calls).toMatchObject([{ outcome: "unavailable", retries: 2 }]);
  });

  it("does not wait for a Retry-After longer than allowed: the caller gets it", async () => {
    const { http, server } = await setup(
      json(429, { code: 4013, msg: "later" }, { "retry-after": "60" }),
    );
    const err = await failure(http.json({ step: "chat.retrieve", method: "GET", path: "/x" }));
    expect(err.retryAfterMs).toBe(60_000);
    expect(server.seen).toHaveLength(1);
  });

  it("stops retrying when the shared budget is spent", async () => {
    const { http, server } = await setupWith(
      { retryBudget: createRetryBudget({ reserve: 1, ratio: 0 }) },
      json(503, { code: 5000, msg: "down" }),
    );
    await failure(http.json({ step: "chat.retrieve", method: "GET", path: "/x" }));
    expect(server.seen).toHaveLength(2);
    await failure(http.json({ step: "chat.retrieve", method: "GET", path: "/x" }));
    expect(server.seen).toHaveLength(3);
  });

  it("sends a write again when the connection was refused before it was sent", async () => {
    const probe = await startScriptedServer(json(200, {}));
    const url = probe.url;
    await probe.close();
    pools = createPools();
    let backoffStarted!: () => void;
    const firstBackoff = new Promise<void>((resolve) => {
      backoffStarted = resolve;
    });
    const calls: CallInfo[] = [];
    const http = createCozeHttp({
      baseUrl: url,
      tokens: fakeTokens(),
      pools,
      requestTimeoutMs: Number.POSITIVE_INFINITY, // no deadline timer: the only sleep is the backoff
      clock: {
        now: systemClock.now,
        sleep(ms, signal) {
          backoffStarted();
          return systemClock.sleep(ms, signal);
        },
      },
      retry: { maxAttempts: 5, backoff: { initialMs: 50, maxMs: 50, jitter: 0 } },
      onCall: (c) => calls.push(c),
    });
    const pending = http.json({ step: "workflow.run", method: "POST", path: "/run", body: {} });
    // The first attempt was refused (nothing listens); bring the port back during the backoff.
    await firstBackoff;
    const revived = await startScriptedServerOn(
      Number(new URL(url).port),
      json(200, { code: 0, data: "{}" }),
    );
    try {
      const res = await pending;
      expect(res.body.data).toBe("{}");
      expect(revived.seen).toHaveLength(1);
      expect(calls[0]?.retries).toBeGreaterThanOrEqual(1);
    } finally {
      await revived.close();
    }
  });

  it("fails with timeout when the response does not arrive before the deadline", async () => {
    const { http } = await setup(() => {
      /* never answers */
    });
    const err = await failure(
      http.json({ step: "chat.retrieve", method: "GET", path: "/x", timeoutMs: 50 }),
    );
    expect(err.code).toBe("timeout");
  });

  it("fails with canceled when the caller aborts", async () => {
    const { http } = await setup(() => {});
    const ac = new AbortController();
    const p = http.json({ step: "chat.retrieve", method: "GET", path: "/x", signal: ac.signal });
    setTimeout(() => ac.abort(), 10);
    expect((await failure(p)).code).toBe("canceled");
  });

  it("reports a connection reset as unavailable", async () => {
    const { http } = await setup((_req, _res, socket) => {
      socket.destroy();
    });
    const err = await failure(http.json({ step: "chat.retrieve", method: "GET", path: "/x" }));
    expect(err.code).toBe("unavailable");
  });
});

/** Reads `stream` until it fails: the names of the events before the failure, and the failure. */
async function readToFailure(stream: StreamResponse) {
  const seen: string[] = [];
  const err = await failure(
    readEvents(stream, (e) => {
      seen.push(e.event ?? "");
      return undefined;
    }),
  );
  return { seen, err };
}

describe("CozeHttp.stream", () => {
  it("yields the events of an event-stream response", async () => {
    const { http } = await setup(sse('event:done\ndata:"[DONE]"\n\n'));
    const stream = await http.stream({ step: "chat.stream", method: "POST", path: "/v3/chat" });
    expect(await readEvents(stream)).toEqual([{ id: undefined, event: "done", data: '"[DONE]"' }]);
  });

  it("throws the JSON envelope answered instead of a stream, and retries a token rejection", async () => {
    const { http, server } = await setup(
      json(200, { code: 4100, msg: "authentication is invalid" }),
      json(200, { code: 4000, msg: "json fail" }),
    );
    const err = await failure(
      http.stream({ step: "chat.stream", method: "POST", path: "/v3/chat" }),
    );
    expect(err.code).toBe("bad_request");
    expect(err.cozeCode).toBe(4000);
    expect(server.seen).toHaveLength(2);
  });

  it("treats a bare JSON envelope inside an event stream as an error before the stream", async () => {
    const { http } = await setup(sse('{"code":4101,"msg":"no permission"}'));
    const err = await failure(
      http.stream({ step: "chat.stream", method: "POST", path: "/v3/chat" }),
    );
    expect(err.code).toBe("permission");
    expect(err.cozeCode).toBe(4101);
  });

  it("fails an idle stream with timeout and releases the connection", async () => {
    const { http, server } = await setup((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("event:conversation.chat.created\ndata:{}\n\n");
    });
    const stream = await http.stream({ step: "chat.stream", method: "POST", path: "/v3/chat" });
    const err = await failure(readEvents(stream));
    expect(err.code).toBe("timeout");
    await expect.poll(() => server.openResponses()).toBe(0);
  });

  it("treats an error envelope after keep-alive pings as an error before the stream", async () => {
    const { http } = await setup(async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("event:ping\ndata:{}\n\n");
      await new Promise((r) => setTimeout(r, 30));
      res.end('{"code":4013,"msg":"too many requests"}\n');
    });
    const err = await failure(
      http.stream({ step: "chat.stream", method: "POST", path: "/v3/chat" }),
    );
    expect(err.code).toBe("rate_limited");
  });

  it("hands over the events before a bad line, then fails with protocol at once", async () => {
    const { http } = await setup(async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("event:a\ndata:{}\n\n");
      await new Promise((r) => setTimeout(r, 50));
      // The upstream stays open after the bad line: the failure must not wait for more.
      res.write("event:b\ndata:{}\n\n<html>\n");
      await new Promise(() => {});
    });
    const stream = await http.stream({ step: "chat.stream", method: "POST", path: "/v3/chat" });
    const started = Date.now();
    const { seen, err } = await readToFailure(stream);
    expect(err.code).toBe("protocol");
    expect(seen).toEqual(["a", "b"]);
    // At once, not at the stream's idle timeout (500 ms here).
    expect(Date.now() - started).toBeLessThan(400);
  });

  it("slows the upstream down while its reader takes nothing, instead of buffering it", async () => {
    const event = `event:conversation.message.delta\ndata:{"content":"${"x".repeat(1000)}"}\n\n`;
    const total = 64 * 1024 * 1024;
    let written = 0;
    const { http } = await setup(async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      while (written < total && !res.destroyed) {
        written += event.length;
        if (!res.write(event)) {
          await new Promise((resolve) => {
            res.once("drain", resolve);
            res.once("close", resolve);
          });
        }
      }
      res.end();
    });
    const stream = await http.stream({ step: "chat.stream", method: "POST", path: "/v3/chat" });
    expect(stream.take([])).toBe(false);
    await new Promise((r) => setTimeout(r, 300));
    // Socket buffers and undici's high-water mark hold a few MiB at most; the rest waits.
    expect(written).toBeLessThan(16 * 1024 * 1024);
    let read = 0;
    await readEvents(stream, () => ++read === 20_000);
    expect(read).toBe(20_000);
    expect(written).toBeGreaterThan(20_000 * event.length);
  });

  it("closes the upstream connection when the consumer stops early", async () => {
    const { http, server } = await setup((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("event:a\ndata:{}\n\nevent:b\ndata:{}\n\n");
    });
    const stream = await http.stream({ step: "chat.stream", method: "POST", path: "/v3/chat" });
    expect(await readEvents(stream, () => true)).toHaveLength(1);
    await expect.poll(() => server.openResponses()).toBe(0);
  });

  it("hands over the events before the connection broke, then fails with unavailable", async () => {
    const { http } = await setup(async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("event:a\ndata:{}\n\n");
      await new Promise((r) => setTimeout(r, 50));
      res.write("event:b\ndata:{}\n\nevent:c\nda");
      await new Promise((r) => setTimeout(r, 50));
      res.socket?.destroy();
    });
    const stream = await http.stream({ step: "chat.stream", method: "POST", path: "/v3/chat" });
    const { seen, err } = await readToFailure(stream);
    expect(err.code).toBe("unavailable");
    expect(seen).toEqual(["a", "b"]);
  });
});
