import { cors } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { rawRequest } from "../../test/support/raw-http.js";
import {
  startTestServer,
  type TestServer,
  testDoor,
  testKey,
} from "../../test/support/test-server.js";

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

const preflight = (url: string, origin: string, path = listModels) =>
  rawRequest(`${url}${path}`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type,connect-protocol-version",
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
  it("answers a preflight from an allowed origin with Connect's methods and headers plus Authorization", async () => {
    const res = await preflight(await start([app]), app);
    expect(res.status).toBe(204);
    expect(res.headers["access-control-allow-origin"]).toBe(app);
    expect(list(res.headers.vary)).toContain("origin");
    expect(list(res.headers["access-control-allow-methods"])).toEqual(
      cors.allowedMethods.map((m) => m.toLowerCase()),
    );
    const headers = list(res.headers["access-control-allow-headers"]);
    for (const h of [...cors.allowedHeaders, "Authorization"])
      expect(headers).toContain(h.toLowerCase());
    expect(Number(res.headers["access-control-max-age"])).toBeGreaterThan(0);
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

  it("marks an actual call from an allowed origin readable and exposes the gRPC-Web status headers", async () => {
    const res = await connectCall(await start([app]), app);
    expect(res.status).toBe(200);
    expect(res.headers["access-control-allow-origin"]).toBe(app);
    expect(list(res.headers.vary)).toContain("origin");
    const exposed = list(res.headers["access-control-expose-headers"]);
    for (const h of cors.exposedHeaders) expect(exposed).toContain(h.toLowerCase());
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
