import { cors } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { rawConnect, rawRequest } from "../../test/support/raw-http.js";
import {
  startTestServer,
  type TestServer,
  testDoor,
  testKey,
} from "../../test/support/test-server.js";
import { conversationHeader } from "../openai/bot-completion.js";
import { channelHeader, errorHeaders } from "../service/errors.js";
import { exposedHeaders } from "./cors.js";
import { requestIdHeader } from "./observe.js";

const app = "https://app.example.com";
const listModels = "/cozegateway.v1.ModelService/ListModels";

let ts: TestServer | undefined;
afterEach(async () => {
  await ts?.server.close();
  ts = undefined;
});

const start = async (corsOrigins: readonly string[]) => {
  ts = await startTestServer({ corsOrigins, doors: [testDoor(() => false)] });
  return ts.server.url;
};
const restart = async (corsOrigins: readonly string[]) => {
  await ts?.server.close();
  return start(corsOrigins);
};

const connectHeaders = "authorization,content-type,connect-protocol-version";
/** The headers Chromium's preflight names for the openai SDK's `chat.completions.create`. */
const openAiSdkHeaders =
  "authorization,content-type,x-stainless-arch,x-stainless-lang,x-stainless-os,x-stainless-package-version,x-stainless-retry-count,x-stainless-runtime,x-stainless-runtime-version,x-stainless-timeout";

const preflight = (url: string, origin: string, path = listModels, headers = connectHeaders) =>
  rawRequest(`${url}${path}`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": headers,
    },
  });

const connectCall = (url: string, origin: string, key = testKey) =>
  rawRequest(`${url}${listModels}`, {
    method: "POST",
    headers: {
      origin,
      "content-type": "application/json",
      ...(key ? { authorization: `Bearer ${key}` } : {}),
    },
    body: "{}",
  });

const list = (value: string | string[] | undefined) =>
  String(value ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");

describe("CORS", () => {
  it("answers a preflight from an allowed origin with Connect's methods and the headers it asked for", async () => {
    const asked = [...cors.allowedHeaders, "Authorization"].join(",");
    const res = await preflight(await start([app]), app, listModels, asked);
    expect(res.status).toBe(204);
    expect(res.headers["access-control-allow-origin"]).toBe(app);
    expect(list(res.headers["access-control-allow-methods"])).toEqual(
      cors.allowedMethods.map((m) => m.toLowerCase()),
    );
    expect(list(res.headers["access-control-allow-headers"])).toEqual(list(asked));
    expect(Number(res.headers["access-control-max-age"])).toBeGreaterThan(0);
  });

  it("grants the openai SDK's x-stainless-* headers, with Vary naming what the answer reflects", async () => {
    const url = await start([app]);
    const res = await preflight(url, app, "/v1/chat/completions", openAiSdkHeaders);
    expect(res.status).toBe(204);
    expect(list(res.headers["access-control-allow-headers"])).toEqual(list(openAiSdkHeaders));
    expect(list(res.headers.vary)).toEqual([
      "origin",
      "access-control-request-method",
      "access-control-request-headers",
    ]);
    // The same with any origin allowed: "*" grants the origin, not a header list.
    const any = await preflight(await restart(["*"]), app, "/v1/responses", openAiSdkHeaders);
    expect(list(any.headers["access-control-allow-headers"])).toContain("x-stainless-os");
  });

  it("grants each asked-for name once, lower-cased, skipping empty list items", async () => {
    const res = await preflight(
      await start([app]),
      app,
      "/v1/models",
      " X-Custom ,, authorization,x-custom,AUTHORIZATION, ",
    );
    expect(res.status).toBe(204);
    expect(res.headers["access-control-allow-headers"]).toBe("x-custom, authorization");
  });

  it("grants the names of a repeated Access-Control-Request-Headers line too", async () => {
    const url = await start([app]);
    const c = await rawConnect(Number(new URL(url).port));
    c.socket.write(
      `OPTIONS /v1/models HTTP/1.1\r\nHost: gw\r\nOrigin: ${app}\r\n` +
        "Access-Control-Request-Method: GET\r\n" +
        "Access-Control-Request-Headers: authorization\r\n" +
        "Access-Control-Request-Headers: x-stainless-os\r\nConnection: close\r\n\r\n",
    );
    await c.closed;
    const text = c.received().toString("latin1");
    expect(text).toMatch(/^HTTP\/1\.1 204 /);
    expect(text).toMatch(/\r\naccess-control-allow-headers: authorization, x-stainless-os\r\n/i);
  });

  it("sends no Access-Control-Allow-Headers when the preflight asks for none", async () => {
    const res = await rawRequest(`${await start([app])}/v1/models`, {
      method: "OPTIONS",
      headers: { origin: app, "access-control-request-method": "GET" },
    });
    expect(res.status).toBe(204);
    expect(res.headers["access-control-allow-origin"]).toBe(app);
    expect(res.headers["access-control-allow-headers"]).toBeUndefined();
  });

  it("refuses a preflight asking for something that is not a header name, with 400 and no grant", async () => {
    const url = await start(["*"]);
    for (const bad of ["x-ok, x bad", "x-ok,(comment)", "a;b", 'x-"quoted"', "x-é"]) {
      const res = await preflight(url, app, "/v1/chat/completions", bad);
      expect(res.status, bad).toBe(400);
      expect(JSON.parse(res.body).error.message, bad).toMatch(
        /^access-control-request-headers: ".*" is not a header name$/,
      );
      expect(res.headers["access-control-allow-origin"], bad).toBeUndefined();
      expect(res.headers["access-control-allow-headers"], bad).toBeUndefined();
    }
    const long = `x-${"a".repeat(5000)} y`;
    const res = await preflight(url, app, "/v1/models", long);
    expect(res.status).toBe(400);
    expect(res.body.length).toBeLessThan(300);
  });

  it("answers a preflight for the OpenAI routes without asking for a key", async () => {
    const res = await preflight(await start([app]), app, "/v1/chat/completions");
    expect(res.status).toBe(204);
    expect(res.headers["access-control-allow-origin"]).toBe(app);
  });

  it("refuses a preflight from another origin with 403 and no CORS headers", async () => {
    const res = await preflight(await start([app]), "https://evil.example.com");
    expect(res.status).toBe(403);
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
    expect(res.headers["access-control-allow-methods"]).toBeUndefined();
  });

  it("marks an actual call from an allowed origin readable and exposes the gateway's headers by name", async () => {
    const res = await connectCall(await start([app]), app);
    expect(res.status).toBe(200);
    expect(res.headers["access-control-allow-origin"]).toBe(app);
    expect(list(res.headers.vary)).toEqual(["origin"]);
    const exposed = list(res.headers["access-control-expose-headers"]);
    expect(exposed).toEqual(exposedHeaders.map((h) => h.toLowerCase()));
    const ours = [
      ...cors.exposedHeaders,
      ...Object.values(errorHeaders),
      channelHeader,
      requestIdHeader,
      conversationHeader,
      "x-coze-execute-id",
      ...["limit", "remaining", "reset"].flatMap((k) => [
        `x-ratelimit-${k}-requests`,
        `x-ratelimit-${k}-tokens`,
      ]),
    ];
    for (const h of ours) expect(exposed).toContain(h.toLowerCase());
    // No prefix wildcard: browsers would take "x-coze-*" for a header named that.
    expect(exposed.filter((h) => h.includes("*"))).toEqual([]);
  });

  it("lets an allowed origin read an Unauthenticated error", async () => {
    const res = await connectCall(await start([app]), app, "");
    expect(res.status).toBe(401);
    expect(res.headers["access-control-allow-origin"]).toBe(app);
  });

  it("adds no CORS headers to a call from another origin", async () => {
    const res = await connectCall(await start([app]), "https://evil.example.com");
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
    expect(res.headers["access-control-expose-headers"]).toBeUndefined();
  });

  it('allows any origin with "*", echoing it', async () => {
    const url = await start(["*"]);
    const pre = await preflight(url, "http://localhost:5173");
    expect(pre.status).toBe(204);
    expect(pre.headers["access-control-allow-origin"]).toBe("http://localhost:5173");
    const res = await connectCall(url, "https://elsewhere.example.org");
    expect(res.headers["access-control-allow-origin"]).toBe("https://elsewhere.example.org");
  });

  it("compares origins exactly", async () => {
    const url = await start([app]);
    for (const origin of [`${app}:443`, "http://app.example.com", `${app}.evil.com`]) {
      const res = await preflight(url, origin);
      expect(res.status).toBe(403);
    }
  });
});
