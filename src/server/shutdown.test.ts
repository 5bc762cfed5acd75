import { once } from "node:events";
import { request, type ServerResponse } from "node:http";
import { connect } from "node:net";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  createTestTransport,
  startTestServer,
  stubRoutes,
  type TestProtocol,
  type TestServer,
  type TestTransport,
  testDoor,
  withKey,
} from "../../test/support/test-server.js";
import { ChatService } from "../gen/cozegateway/v1/chat_pb.js";
import { ListModelsResponseSchema, ModelService } from "../gen/cozegateway/v1/model_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../gen/grpc/health/v1/health_pb.js";
import type { GatewayServerOptions } from "./gateway-server.js";

interface Deferred<T = void> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}
const deferred = <T = void>(): Deferred<T> => {
  let resolve: (value: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
};

let ts: TestServer | undefined;
const clients: TestTransport[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await ts?.server.close();
  ts = undefined;
});

const start = async (overrides: Partial<GatewayServerOptions>) => {
  ts = await startTestServer(overrides);
  return ts.server;
};
const transport = (protocol: TestProtocol, url: string) => {
  const client = createTestTransport(protocol, url);
  clients.push(client);
  return client.transport;
};
const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => ConnectError.from(e),
  );
const connectionRefused = (port: number) =>
  new Promise<string>((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
  });

describe.each(["gRPC over HTTP/2", "Connect JSON over HTTP/1.1"] as const)(
  "graceful shutdown, %s",
  (protocol) => {
    it("ends an open server stream at once with Unavailable, even if the service is blocked", async () => {
      const aborted: unknown[] = [];
      const server = await start({
        shutdownGraceMs: 10_000,
        routes: stubRoutes({
          async *chatStream(_req, ctx) {
            ctx.signal.addEventListener("abort", () => aborted.push(ctx.signal.reason));
            yield { event: { case: "started", value: { chatId: "c" } } };
            // Blocked on "upstream" that never answers and ignores the signal.
            await new Promise(() => {});
          },
        }),
      });
      const chat = createClient(ChatService, transport(protocol, server.url));
      const stream = chat.chatStream({}, withKey())[Symbol.asyncIterator]();
      expect((await stream.next()).value?.event.case).toBe("started");

      const started = performance.now();
      const closed = server.close();
      const err = await failure(stream.next());
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toBe("server is shutting down");
      await closed;
      expect(performance.now() - started).toBeLessThan(1000);
      // The service's signal carries the same reason, so it can release upstream work.
      expect(aborted).toHaveLength(1);
      expect(ConnectError.from(aborted[0]).code).toBe(Code.Unavailable);
    });

    it("lets a unary call in flight finish, refusing new connections meanwhile", async () => {
      const entered = deferred();
      const release = deferred();
      let signalAbortedAtRelease: boolean | undefined;
      const server = await start({
        shutdownGraceMs: 10_000,
        routes: stubRoutes({
          async listModels(ctx) {
            entered.resolve();
            await release.promise;
            signalAbortedAtRelease = ctx.signal.aborted;
            return create(ListModelsResponseSchema, { models: [{ name: "late-but-fine" }] });
          },
        }),
      });
      const models = createClient(ModelService, transport(protocol, server.url));
      const call = models.listModels({}, withKey());
      await entered.promise;

      const started = performance.now();
      let closeDone = false;
      const closed = server.close().then(() => {
        closeDone = true;
      });
      expect(await connectionRefused(server.port)).toBe("ECONNREFUSED");
      expect(closeDone).toBe(false);

      release.resolve();
      const res = await call;
      expect(res.models[0]?.name).toBe("late-but-fine");
      expect(signalAbortedAtRelease).toBe(false);
      await closed;
      expect(performance.now() - started).toBeLessThan(1000);
    });

    it("cuts a unary call still running when the grace period ends, and resolves close() in time", async () => {
      const graceMs = 200;
      const reasons: unknown[] = [];
      const entered = deferred();
      const server = await start({
        shutdownGraceMs: graceMs,
        routes: stubRoutes({
          listModels(ctx) {
            entered.resolve();
            return new Promise((_, reject) => {
              ctx.signal.addEventListener("abort", () => {
                reasons.push(ctx.signal.reason);
                reject(ctx.signal.reason);
              });
            });
          },
        }),
      });
      const models = createClient(ModelService, transport(protocol, server.url));
      const call = failure(models.listModels({}, withKey()));
      await entered.promise;

      const started = performance.now();
      await server.close();
      const elapsed = performance.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(graceMs - 5);
      expect(elapsed).toBeLessThan(graceMs + 500);
      // Not aborted at shutdown start: only when the grace period ran out.
      expect(reasons).toHaveLength(1);
      expect(ConnectError.from(reasons[0]).code).toBe(Code.Unavailable);
      expect((await call).code).toBe(Code.Unavailable);
    });
  },
);

describe("graceful shutdown", () => {
  it("ends many concurrent streams without warnings about listener leaks", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const server = await start({
        shutdownGraceMs: 10_000,
        routes: stubRoutes({
          async *chatStream(_req, ctx) {
            yield { event: { case: "started", value: {} } };
            await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          },
        }),
      });
      const chat = createClient(ChatService, transport("gRPC over HTTP/2", server.url));
      const streams = await Promise.all(
        Array.from({ length: 25 }, async () => {
          const stream = chat.chatStream({}, withKey())[Symbol.asyncIterator]();
          await stream.next();
          return stream;
        }),
      );
      const closed = server.close();
      const codes = await Promise.all(streams.map(async (s) => (await failure(s.next())).code));
      expect(new Set(codes)).toEqual(new Set([Code.Unavailable]));
      await closed;
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.map((w) => w.message)).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("sends NOT_SERVING to health watchers, then ends their streams with Unavailable", async () => {
    const server = await start({ shutdownGraceMs: 10_000 });
    const health = createClient(Health, transport("gRPC over HTTP/2", server.url));
    const watch = health.watch({ service: "" })[Symbol.asyncIterator]();
    expect((await watch.next()).value?.status).toBe(Status.SERVING);

    const closed = server.close();
    expect((await watch.next()).value?.status).toBe(Status.NOT_SERVING);
    const err = await failure(watch.next());
    expect(err.code).toBe(Code.Unavailable);
    await closed;
  });

  it("closes idle keep-alive HTTP/1.1 and HTTP/2 connections at once", async () => {
    const server = await start({ shutdownGraceMs: 10_000 });
    for (const protocol of ["gRPC over HTTP/2", "Connect binary over HTTP/1.1"] as const) {
      const models = createClient(ModelService, transport(protocol, server.url));
      await models.listModels({}, withKey());
    }
    const started = performance.now();
    await server.close();
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it("drops a connection that has not sent a byte at once", async () => {
    const server = await start({ shutdownGraceMs: 10_000 });
    const silent = connect(server.port, "127.0.0.1");
    await once(silent, "connect");
    const dropped = once(silent, "close");
    const started = performance.now();
    await server.close();
    await dropped;
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it("aborts the http handler's shutdown signal at once, so an open REST stream can end itself", async () => {
    const reasons: unknown[] = [];
    const server = await start({
      shutdownGraceMs: 10_000,
      doors: [
        testDoor((_req, response, _caller, shutdown) => {
          const res = response as ServerResponse;
          res.writeHead(200, { "content-type": "text/event-stream" });
          res.write("data: first\n\n");
          shutdown.addEventListener("abort", () => {
            reasons.push(shutdown.reason);
            res.end('data: {"error":{"message":"server is shutting down"}}\n\n');
          });
          return true;
        }),
      ],
    });
    const body = new Promise<string>((resolve, reject) => {
      const req = request(
        `${server.url}/v1/chat/completions`,
        { method: "POST", headers: withKey().headers, agent: false },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            text += chunk;
            if (text === "data: first\n\n") void server.close();
          });
          res.on("end", () => resolve(text));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end("{}");
    });
    const started = performance.now();
    expect(await body).toBe(
      'data: first\n\ndata: {"error":{"message":"server is shutting down"}}\n\n',
    );
    await server.close();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(reasons).toHaveLength(1);
    expect(ConnectError.from(reasons[0]).code).toBe(Code.Unavailable);
  });

  it("returns the same promise from every close() call", async () => {
    const server = await start({});
    const first = server.close();
    expect(server.close()).toBe(first);
    await first;
    expect(await connectionRefused(server.port)).toBe("ECONNREFUSED");
  });

  it("logs the shutdown", async () => {
    const server = await start({});
    await server.close();
    expect(ts?.logs.map((l) => l.msg)).toEqual(["listening", "shutting down", "closed"]);
  });
});
