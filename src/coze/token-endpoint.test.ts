import { EventEmitter, once } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createManualClock, type ManualClock } from "../../test/support/manual-clock.js";
import { CozeError } from "./errors.js";
import { createPools, type Pools } from "./pools.js";
import {
  jwtBearerGrantType,
  requestAccessToken,
  type TokenEndpointRequest,
  tokenPath,
} from "./token-endpoint.js";

interface Seen {
  method: string | undefined;
  url: string | undefined;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** The reply waits for this; a promise that never settles holds the response forever. */
  hold?: Promise<void>;
}

const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxIn0.c2lnbmF0dXJlLW5vdC1jaGVja2VkLWhlcmU";
const start = Date.parse("2026-03-01T10:00:00Z");

let server: Server;
let baseUrl: string;
let pools: Pools;
let seen: Seen[];
let reply: (seen: Seen) => Reply;
let clock: ManualClock;
const arrivals = new EventEmitter();

beforeEach(async () => {
  seen = [];
  reply = () => ({ body: JSON.stringify({ access_token: "czs_ok", expires_in: 1 }) });
  server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
    });
    req.on("end", async () => {
      const request = { method: req.method, url: req.url, headers: req.headers, body };
      seen.push(request);
      arrivals.emit("request");
      const r = reply(request);
      await r.hold;
      res.sendDate = false;
      res.writeHead(r.status ?? 200, { "content-type": "application/json", ...r.headers });
      res.end(r.body ?? "");
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  pools = createPools();
  clock = createManualClock(start);
});

afterEach(async () => {
  await pools.destroy();
  server.closeAllConnections();
  server.close();
  await once(server, "close");
});

function call(overrides: Partial<TokenEndpointRequest> = {}) {
  return requestAccessToken({
    url: `${baseUrl}${tokenPath()}`,
    dispatcher: pools.get(baseUrl),
    jwt,
    clientId: "1127900106117",
    durationSeconds: 900,
    userAgent: "coze-gateway-test",
    timeoutMs: 10_000,
    clock,
    ...overrides,
  });
}

async function failure(promise: Promise<unknown>): Promise<CozeError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CozeError);
  const coze = err as CozeError;
  expect(coze.step).toBe("token");
  expect(coze.message).not.toContain(jwt);
  return coze;
}

describe("tokenPath", () => {
  it("picks the normal, account or enterprise endpoint and encodes the id", () => {
    expect(tokenPath()).toBe("/api/permission/oauth2/token");
    expect(tokenPath("7351234567890123456")).toBe(
      "/api/permission/oauth2/account/7351234567890123456/token",
    );
    expect(tokenPath(undefined, "volcano_210195/x")).toBe(
      "/api/permission/oauth2/enterprise_id/volcano_210195%2Fx/token",
    );
    expect(() => tokenPath("1", "e")).toThrow(TypeError);
  });
});

describe("requestAccessToken", () => {
  it("posts the jwt-bearer grant with the JWT as bearer and reads the flat token body", async () => {
    reply = () => ({
      headers: { "x-tt-logid": "20260301100000ABCDEF", date: "Sun, 01 Mar 2026 10:00:02 GMT" },
      body: JSON.stringify({ access_token: "czs_abc", expires_in: 1_772_359_200 }),
    });
    const token = await call();
    expect(token).toEqual({
      accessToken: "czs_abc",
      expiresIn: 1_772_359_200,
      serverDateMs: start + 2000,
      logId: "20260301100000ABCDEF",
    });
    expect(seen).toHaveLength(1);
    const [request] = seen;
    expect(request?.method).toBe("POST");
    expect(request?.url).toBe("/api/permission/oauth2/token");
    expect(request?.headers.authorization).toBe(`Bearer ${jwt}`);
    expect(request?.headers["content-type"]).toBe("application/json");
    expect(request?.headers["user-agent"]).toBe("coze-gateway-test");
    expect(JSON.parse(request?.body ?? "")).toEqual({
      grant_type: jwtBearerGrantType,
      duration_seconds: 900,
      client_id: "1127900106117",
    });
    expect(jwtBearerGrantType).toBe("urn:ietf:params:oauth:grant-type:jwt-bearer");
  });

  it("reports no server date when the response has no Date header", async () => {
    expect((await call()).serverDateMs).toBeUndefined();
  });

  it("turns an OAuth error body into a safe CozeError with Coze's code, text and log id", async () => {
    reply = () => ({
      status: 401,
      headers: { "x-tt-logid": "LOG123" },
      body: JSON.stringify({
        error_code: "invalid_client",
        error: "invalid_client",
        error_message: `bad JWT ${jwt}`,
      }),
    });
    const err = await failure(call());
    expect(err.code).toBe("authentication");
    expect(err.message).toBe("token: authentication failed (Coze code invalid_client)");
    expect(err.status).toBe(401);
    expect(err.cozeCode).toBe("invalid_client");
    expect(err.cozeMessage).toBe(`bad JWT ${jwt}`);
    expect(err.logId).toBe("LOG123");
  });

  it("reads the OAuth error from `error` and `error_description` when error_code is absent", async () => {
    reply = () => ({
      status: 403,
      body: JSON.stringify({ error: "access_deny", error_description: "app deactivated" }),
    });
    const err = await failure(call());
    expect(err.code).toBe("permission");
    expect(err.cozeCode).toBe("access_deny");
    expect(err.cozeMessage).toBe("app deactivated");
  });

  it("treats an OAuth error body as an error even with HTTP 200, as the go SDK does", async () => {
    reply = () => ({ body: JSON.stringify({ error_code: "internal_error", error_message: "x" }) });
    expect((await failure(call())).code).toBe("unavailable");
  });

  it("classifies an API envelope error such as code 4100", async () => {
    reply = () => ({ body: JSON.stringify({ code: 4100, msg: "authentication is invalid" }) });
    const err = await failure(call());
    expect(err.code).toBe("authentication");
    expect(err.cozeCode).toBe(4100);
    expect(err.cozeMessage).toBe("authentication is invalid");
  });

  it("reads an API envelope code sent as a string, as every Coze response is read", async () => {
    reply = () => ({ body: JSON.stringify({ code: "4101", msg: "no permission" }) });
    const err = await failure(call());
    expect(err.code).toBe("permission");
    expect(err.cozeCode).toBe(4101);
  });

  it("honours Retry-After on 429 in seconds and on 503 as an HTTP date", async () => {
    reply = () => ({ status: 429, headers: { "retry-after": "7" }, body: "{}" });
    const limited = await failure(call());
    expect(limited.code).toBe("rate_limited");
    expect(limited.retryAfterMs).toBe(7000);

    reply = () => ({
      status: 503,
      headers: { "retry-after": "Sun, 01 Mar 2026 10:00:20 GMT", "content-type": "text/plain" },
      body: "busy",
    });
    const busy = await failure(call());
    expect(busy.code).toBe("unavailable");
    expect(busy.retryAfterMs).toBe(20_000);
  });

  it("classifies by status when the body says nothing", async () => {
    reply = () => ({ status: 502, headers: { "content-type": "text/html" }, body: "<h1>bad</h1>" });
    expect((await failure(call())).code).toBe("unavailable");
    reply = () => ({ status: 404 });
    expect((await failure(call())).code).toBe("not_found");
    reply = () => ({ status: 302 });
    expect((await failure(call())).code).toBe("protocol");
  });

  it("fails with protocol on a 2xx that is not a token", async () => {
    const bodies = [
      "not json",
      "",
      "[]",
      JSON.stringify({ expires_in: 1_772_359_200 }),
      JSON.stringify({ access_token: "", expires_in: 1_772_359_200 }),
      JSON.stringify({ access_token: "czs_x" }),
      JSON.stringify({ access_token: "czs_x", expires_in: "1772359200" }),
      JSON.stringify({ access_token: "czs_x", expires_in: -5 }),
      JSON.stringify({ code: 0, msg: "", data: { access_token: "czs_x", expires_in: 1 } }),
    ];
    for (const body of bodies) {
      reply = () => ({ body, headers: { "x-tt-logid": "L" } });
      const err = await failure(call());
      expect(err.code).toBe("protocol");
      expect(err.logId).toBe("L");
    }
  });

  it("refuses a body over 64 KiB without reading it all", async () => {
    const huge = JSON.stringify({ access_token: "czs_x", expires_in: 1, pad: "x".repeat(70_000) });
    reply = () => ({ body: huge });
    expect((await failure(call())).code).toBe("protocol");
  });

  it("times out on the injected clock when the server does not answer", async () => {
    reply = () => ({ hold: new Promise<void>(() => {}) });
    const failed = failure(call({ timeoutMs: 5_000 }));
    await requestsSeen(1);
    await clock.advance(4_999);
    await clock.advance(1);
    expect((await failed).code).toBe("timeout");
  });

  it("is canceled by its signal", async () => {
    reply = () => ({ hold: new Promise<void>(() => {}) });
    const controller = new AbortController();
    const pending = call({ signal: controller.signal });
    await requestsSeen(1);
    controller.abort();
    expect((await failure(pending)).code).toBe("canceled");
    const already = await failure(call({ signal: AbortSignal.abort() }));
    expect(already.code).toBe("canceled");
  });

  it("reports a refused connection as unavailable", async () => {
    const closed = createServer();
    closed.listen(0, "127.0.0.1");
    await once(closed, "listening");
    const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    closed.close();
    await once(closed, "close");
    const err = await failure(call({ url: `${url}${tokenPath()}`, dispatcher: pools.get(url) }));
    expect(err.code).toBe("unavailable");
  });
});

// Waits until the server has seen `n` requests: real I/O, no timers.
async function requestsSeen(n: number): Promise<void> {
  while (seen.length < n) await once(arrivals, "request");
}
