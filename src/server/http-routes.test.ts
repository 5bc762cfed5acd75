import { Agent, request } from "node:http";
import { connect as connectHttp2 } from "node:http2";
import { connect } from "node:net";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { rawRequest } from "../../test/support/raw-http.js";
import {
  startTestServer,
  type TestServer,
  testCaller,
  testDoor,
  testKey,
} from "../../test/support/test-server.js";
import { ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { inProcessTenant } from "../service/tenant.js";
import type { Caller } from "./caller.js";
import { publicDoor } from "./doors.js";
import type { GatewayServerOptions } from "./gateway-server.js";

let ts: TestServer | undefined;
afterEach(async () => {
  await ts?.server.close();
  ts = undefined;
});

const start = async (overrides: Partial<GatewayServerOptions> = {}) => {
  ts = await startTestServer(overrides);
  return ts.server.url;
};

const auth = { authorization: `Bearer ${testKey}` };

describe("doors", () => {
  it("serves a public door without a key, and a key door only with one", async () => {
    const url = await start({
      doors: [
        publicDoor("/metrics", (_req, res) => {
          res.writeHead(200, { "content-type": "text/plain" });
          res.end("ok 1\n");
          return true;
        }),
        testDoor(() => false),
      ],
    });
    const open = await rawRequest(`${url}/metrics`);
    expect([open.status, open.body]).toEqual([200, "ok 1\n"]);
    const v1 = await rawRequest(`${url}/v1/models`);
    expect(v1.status).toBe(401);
    expect(JSON.parse(v1.body)).toEqual({
      error: { code: "unauthenticated", message: "missing or invalid API key" },
    });
  });

  it("gives a door only the paths it owns; Connect gets its procedures, the rest 404", async () => {
    const asked: string[] = [];
    const url = await start({
      doors: [
        publicDoor("/metrics", (req) => {
          asked.push(req.url ?? "");
          return false;
        }),
      ],
    });
    const rpc = await rawRequest(`${url}/cozegateway.v1.ModelService/ListModels`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: "{}",
    });
    expect(rpc.status).toBe(200);
    for (const path of ["/metricsx", "/other", "/metrics"]) {
      const res = await rawRequest(`${url}${path}`);
      expect(res.status, path).toBe(404);
    }
    await rawRequest(`${url}/metrics/sub?q=1`);
    expect(asked).toEqual(["/metrics", "/metrics/sub?q=1"]);
  });

  it("words its refusals in the door's own format", async () => {
    const url = await start({
      doors: [
        {
          ...testDoor(() => false),
          writeError: (res, refusal) => {
            res.writeHead(refusal.status, { "content-type": "text/plain", ...refusal.headers });
            res.end(`door says ${refusal.code}`);
          },
        },
      ],
    });
    const res = await rawRequest(`${url}/v1/anything`);
    expect([res.status, res.body]).toEqual([401, "door says unauthenticated"]);
    expect(res.headers["www-authenticate"]).toBe("Bearer");
    const missing = await rawRequest(`${url}/v1/anything`, { headers: auth });
    expect([missing.status, missing.body]).toEqual([404, "door says not_found"]);
  });

  it("answers 500 without details when a public door throws", async () => {
    const url = await start({
      doors: [
        publicDoor("/anything", async () => {
          throw new Error("secret detail");
        }),
      ],
    });
    const res = await rawRequest(`${url}/anything`);
    expect(res.status).toBe(500);
    expect(res.body).not.toContain("secret detail");
  });
});

describe("limits", () => {
  it("refuses a request whose headers are larger than 16 KiB with 431", async () => {
    const url = await start();
    const res = await rawRequest(`${url}/v1/models`, {
      headers: { authorization: `Bearer ${testKey}`, "x-padding": "x".repeat(32 * 1024) },
    });
    expect(res.status).toBe(431);
  });
});

describe("probes", () => {
  it("answers /healthz with 200 and no key", async () => {
    const res = await rawRequest(`${await start()}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    expect(JSON.parse(res.body)).toEqual({ status: "ok" });
  });

  it("answers /readyz with 200 when ready and 503 when not", async () => {
    let ready = false;
    const url = await start({ ready: () => ready });
    const before = await rawRequest(`${url}/readyz`);
    expect(before.status).toBe(503);
    expect(JSON.parse(before.body)).toEqual({ status: "not ready" });
    ready = true;
    const after = await rawRequest(`${url}/readyz?verbose=1`);
    expect(after.status).toBe(200);
    expect(JSON.parse(after.body)).toEqual({ status: "ready" });
  });

  it("refuses other methods on the probes with 405", async () => {
    const res = await rawRequest(`${await start()}/healthz`, { method: "POST" });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("GET, HEAD");
  });
});

describe("starting", () => {
  it("rejects with the address and the reason when the port is taken", async () => {
    const taken = await startTestServer();
    try {
      await expect(startTestServer({ port: taken.server.port })).rejects.toThrow(
        `cannot listen on 127.0.0.1:${taken.server.port} (EADDRINUSE)`,
      );
    } finally {
      await taken.server.close();
    }
  });

  it("rejects invalid options before listening", async () => {
    await expect(startTestServer({ port: 70000 })).rejects.toThrow(RangeError);
    await expect(startTestServer({ bodyLimitBytes: 0 })).rejects.toThrow(/bodyLimitBytes/);
    await expect(startTestServer({ shutdownGraceMs: -1 })).rejects.toThrow(/shutdownGraceMs/);
  });

  it("reports a wildcard host as 127.0.0.1 in its URL", async () => {
    const url = await start({ host: "0.0.0.0" });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await rawRequest(`${url}/healthz`)).status).toBe(200);
  });
});

describe("plain HTTP routes", () => {
  it("answers an unknown path with a 404 JSON error", async () => {
    const res = await rawRequest(`${await start()}/nope`, { headers: auth });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toEqual({ error: { code: "not_found", message: "not found" } });
  });

  it("answers an HTTP/1.0 request without Host with 400", async () => {
    const url = new URL(await start());
    const socket = connect(Number(url.port), url.hostname);
    socket.end("GET /cozegateway.v1.ModelService/ListModels HTTP/1.0\r\n\r\n");
    let raw = "";
    for await (const chunk of socket) raw += String(chunk);
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(raw).toContain("missing Host header");
  });

  it("answers an unregistered RPC path with 404", async () => {
    const res = await rawRequest(`${await start()}/cozegateway.v1.NoService/Nothing`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(404);
  });

  it("answers a key door's path without a valid key with 401 and WWW-Authenticate", async () => {
    let called = false;
    const url = await start({
      doors: [
        testDoor(() => {
          called = true;
          return true;
        }),
      ],
    });
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer sk-wrong" },
      { authorization: "Basic x" },
    ];
    for (const headers of attempts) {
      const res = await rawRequest(`${url}/v1/models`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers["www-authenticate"]).toBe("Bearer");
      expect(JSON.parse(res.body)).toEqual({
        error: { code: "unauthenticated", message: "missing or invalid API key" },
      });
      expect(res.body).not.toContain("sk-wrong");
    }
    expect(called).toBe(false);
    expect(JSON.stringify(ts?.logs)).not.toContain("sk-wrong");
  });

  it("hands an authenticated request to the http handler with its caller", async () => {
    const url = await start({
      doors: [
        testDoor((req, res, caller) => {
          if (req.url !== "/v1/models") return false;
          res.setHeader("content-type", "application/json");
          res.end(JSON.stringify({ owner: caller.name, models: caller.models }));
          return true;
        }),
      ],
    });
    const res = await rawRequest(`${url}/v1/models`, { headers: auth });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ owner: testCaller.name, models: testCaller.models });
    const other = await rawRequest(`${url}/v1/other`, { headers: auth });
    expect(other.status).toBe(404);
  });

  it("answers 500 'internal error' when the http handler throws, without its text", async () => {
    const url = await start({
      doors: [
        testDoor(async () => {
          throw new Error("upstream said token pat_SECRET_1");
        }),
      ],
    });
    const res = await rawRequest(`${url}/v1/chat/completions`, { method: "POST", headers: auth });
    expect(res.status).toBe(500);
    expect(JSON.parse(res.body).error.message).toBe("internal error");
    expect(JSON.stringify(ts?.logs)).not.toContain("pat_SECRET");
  });

  it("answers 500 when authenticate itself throws, without its text", async () => {
    const url = await start({
      doors: [testDoor(() => true)],
      authenticate: () => {
        throw new Error("key store said pat_SECRET_2");
      },
    });
    const res = await rawRequest(`${url}/v1/models`, { headers: auth });
    expect(res.status).toBe(500);
    expect(res.body).not.toContain("pat_SECRET");
    expect(JSON.stringify(ts?.logs)).not.toContain("pat_SECRET");
  });

  it("answers 413 for a body declared larger than the limit, without calling the handler", async () => {
    let called = false;
    const url = await start({
      bodyLimitBytes: 1024,
      doors: [
        testDoor(() => {
          called = true;
          return false;
        }),
      ],
    });
    const res = await rawRequest(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ text: "x".repeat(2048) }),
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error.code).toBe("too_large");
    expect(called).toBe(false);
  });

  it("answers a Connect unary call over the body limit with resource_exhausted", async () => {
    const url = await start({ bodyLimitBytes: 1024 });
    const res = await rawRequest(`${url}/cozegateway.v1.ModelService/ListModels`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ padding: "x".repeat(2048) }),
    });
    expect(JSON.parse(res.body).code).toBe("resource_exhausted");
  });

  it("serves a Connect unary call to curl-style JSON", async () => {
    const res = await rawRequest(`${await start()}/cozegateway.v1.ModelService/ListModels`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).models[0]).toMatchObject({ name: "bot-a", channel: "tester" });
  });

  it("answers a Connect call without a key with 401 unauthenticated", async () => {
    const res = await rawRequest(`${await start()}/cozegateway.v1.ModelService/ListModels`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toEqual({
      code: "unauthenticated",
      message: "missing or invalid API key",
    });
  });
});

describe("authentication per connection", () => {
  const keys: Record<string, Caller> = {
    [testKey]: testCaller,
    "sk-other-0123456789abcdef": { name: "other", models: undefined, tenant: inProcessTenant },
  };
  /** A server that names the caller of each /v1/whoami, counting the keys it had to check. */
  const startCounting = async () => {
    const checked: string[] = [];
    const url = await start({
      authenticate: (key) => {
        checked.push(key.slice(0, 8));
        return keys[key];
      },
      doors: [
        testDoor((req, res, caller) => {
          if (req.url !== "/v1/whoami") return false;
          res.end(caller.name);
          return true;
        }),
      ],
    });
    return { url, checked };
  };

  it("checks a keep-alive connection's key once, and any other header it sends again", async () => {
    const { url, checked } = await startCounting();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const ports = new Set<number>();
    const whoami = (authorization: string) =>
      new Promise<[number, string]>((resolve, reject) => {
        const req = request(`${url}/v1/whoami`, { agent, headers: { authorization } }, (res) => {
          ports.add(res.socket.localPort ?? 0);
          let body = "";
          res.on("data", (c) => (body += c));
          res.on("end", () => resolve([res.statusCode ?? 0, body]));
        });
        req.on("error", reject);
        req.end();
      });
    try {
      const tester = `Bearer ${testKey}`;
      const other = "Bearer sk-other-0123456789abcdef";
      expect(await whoami(tester)).toEqual([200, "tester"]);
      expect(await whoami(tester)).toEqual([200, "tester"]);
      expect(await whoami(tester)).toEqual([200, "tester"]);
      expect(checked).toEqual(["sk-test-"]);
      // Another key on the same connection is checked, and its own caller answers.
      expect(await whoami(other)).toEqual([200, "other"]);
      // A wrong key is refused even right after a good one on the same connection...
      expect((await whoami("Bearer sk-wrong-0123456789abcdef"))[0]).toBe(401);
      expect((await whoami(`Bearer ${testKey}x`))[0]).toBe(401);
      // ...and does not replace the one that was accepted.
      expect(await whoami(other)).toEqual([200, "other"]);
      expect(await whoami(tester)).toEqual([200, "tester"]);
      expect(checked).toEqual(["sk-test-", "sk-other", "sk-wrong", "sk-test-", "sk-test-"]);
      expect(ports.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it("checks an HTTP/2 connection's key once for all its streams", async () => {
    const { url, checked } = await startCounting();
    const session = connectHttp2(url);
    const whoami = () =>
      new Promise<string>((resolve, reject) => {
        const stream = session.request({
          ":path": "/v1/whoami",
          authorization: `Bearer ${testKey}`,
        });
        let body = "";
        stream.on("data", (c) => (body += c));
        stream.on("end", () => resolve(body));
        stream.on("error", reject);
        stream.end();
      });
    try {
      expect(await whoami()).toBe("tester");
      expect(await Promise.all([whoami(), whoami(), whoami()])).toEqual([
        "tester",
        "tester",
        "tester",
      ]);
      expect(await whoami()).toBe("tester");
      expect(checked).toEqual(["sk-test-"]);
    } finally {
      session.close();
    }
  });

  it("checks a gRPC connection's key once for all its calls, and a wrong key on it every time", async () => {
    const { url, checked } = await startCounting();
    const transport = (key: string) =>
      createGrpcTransport({
        baseUrl: url,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${key}`);
            return next(req);
          },
        ],
      });
    const models = createClient(ModelService, transport(testKey));
    for (let i = 0; i < 4; i++) await models.listModels({});
    await Promise.all([models.listModels({}), models.listModels({})]);
    expect(checked).toEqual(["sk-test-"]);
    const wrong = createClient(ModelService, transport("sk-wrong-0123456789abcdef"));
    for (let i = 0; i < 2; i++) {
      await expect(wrong.listModels({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    }
    expect(checked).toEqual(["sk-test-", "sk-wrong", "sk-wrong"]);
  });
});
