import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  createTestTransport,
  startTestServer,
  type TestServer,
  type TestTransport,
} from "../../test/support/test-server.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../gen/grpc/health/v1/health_pb.js";
import type { GatewayServerOptions } from "./gateway-server.js";

let ts: TestServer | undefined;
let client: TestTransport | undefined;
afterEach(async () => {
  client?.close();
  await ts?.server.close();
  ts = undefined;
  client = undefined;
});

/** A health client over gRPC (h2c), without any API key. */
const start = async (overrides: Partial<GatewayServerOptions> = {}) => {
  ts = await startTestServer(overrides);
  client = createTestTransport("gRPC over HTTP/2", ts.server.url);
  return createClient(Health, client.transport);
};

describe("grpc.health.v1.Health", () => {
  it("reports SERVING for the server and each registered service, without a key", async () => {
    const health = await start();
    for (const service of [
      "",
      "cozegateway.v1.ModelService",
      "cozegateway.v1.ChatService",
      "grpc.health.v1.Health",
    ]) {
      expect((await health.check({ service })).status).toBe(Status.SERVING);
    }
  });

  it("answers Check for an unknown service with NotFound", async () => {
    const health = await start();
    const err = await health.check({ service: "cozegateway.v1.Nope" }).catch(ConnectError.from);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
  });

  it("reports NOT_SERVING while not ready", async () => {
    let ready = false;
    const health = await start({ ready: () => ready });
    expect((await health.check({ service: "" })).status).toBe(Status.NOT_SERVING);
    expect((await health.check({ service: "cozegateway.v1.ModelService" })).status).toBe(
      Status.NOT_SERVING,
    );
    ready = true;
    expect((await health.check({ service: "" })).status).toBe(Status.SERVING);
  });

  it("is served over Connect JSON on HTTP/1.1 too", async () => {
    ts = await startTestServer();
    client = createTestTransport("Connect JSON over HTTP/1.1", ts.server.url);
    const health = createClient(Health, client.transport);
    expect((await health.check({ service: "" })).status).toBe(Status.SERVING);
  });

  it("streams the current status on Watch, then each change", async () => {
    let ready = false;
    const health = await start({ ready: () => ready, readyPollIntervalMs: 5 });
    const abort = new AbortController();
    const seen: Status[] = [];
    try {
      for await (const res of health.watch({ service: "" }, { signal: abort.signal })) {
        seen.push(res.status);
        if (seen.length === 1) ready = true;
        if (seen.length === 2) ready = false;
        if (seen.length === 3) break;
      }
    } finally {
      abort.abort();
    }
    expect(seen).toEqual([Status.NOT_SERVING, Status.SERVING, Status.NOT_SERVING]);
  });

  it("answers Watch for an unknown service with SERVICE_UNKNOWN without ending", async () => {
    const health = await start({ readyPollIntervalMs: 5 });
    const abort = new AbortController();
    const stream = health.watch({ service: "nope.Service" }, { signal: abort.signal });
    const it = stream[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    expect(first.value?.status).toBe(Status.SERVICE_UNKNOWN);
    // Several polls later the stream is still open and has nothing new to say.
    const later = await Promise.race([
      it.next().then(() => "message or end"),
      new Promise((resolve) => setTimeout(resolve, 50, "still open")),
    ]);
    expect(later).toBe("still open");
    abort.abort();
    await it.return?.();
  });
});
