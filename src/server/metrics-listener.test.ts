import { hash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { rawConnect, rawRequest, within } from "../../test/support/raw-http.js";
import { testLimits } from "../../test/support/test-server.js";
import type { NodeRequest, NodeResponse } from "./http-response.js";
import {
  type MetricsListener,
  requireMetricsKey,
  startMetricsListener,
} from "./metrics-listener.js";

// Issue 13: /metrics on an address of its own, or behind a key.
const metricsKey = "metrics-key-0123456789abcdef";
const sha256 = (key: string) => hash("sha256", key, "buffer");

/** Serves `/metrics` with one made-up line and `/other` with "other"; nothing else. */
async function route(req: NodeRequest, res: NodeResponse): Promise<boolean> {
  if (req.url !== "/metrics" && req.url !== "/other") return false;
  res.writeHead(200, { "content-type": "text/plain" });
  res.end(req.url === "/metrics" ? "coze_gateway_up 1\n" : "other");
  return true;
}

const listeners: MetricsListener[] = [];
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((l) => l.close()));
});

const start = async (overrides: Partial<Parameters<typeof startMetricsListener>[0]> = {}) => {
  const listener = await startMetricsListener({
    host: "127.0.0.1",
    port: 0,
    route,
    limits: { ...testLimits, headersTimeoutMs: 200, requestTimeoutMs: 400 },
    log: () => {},
    ...overrides,
  });
  listeners.push(listener);
  return listener;
};

describe("startMetricsListener", () => {
  it("serves /metrics on its own port, and 404 for a path the route does not serve", async () => {
    const listener = await start();
    expect(listener.url).toBe(`http://127.0.0.1:${listener.port}`);
    const metrics = await rawRequest(`${listener.url}/metrics`);
    expect([metrics.status, metrics.body]).toEqual([200, "coze_gateway_up 1\n"]);
    const api = await rawRequest(`${listener.url}/v1/models`);
    expect(api.status).toBe(404);
  });

  it("refuses an address already taken, naming it", async () => {
    const first = await start();
    await expect(start({ port: first.port })).rejects.toThrow(
      `cannot listen on 127.0.0.1:${first.port} (EADDRINUSE)`,
    );
  });

  it("answers 408 to headers that never end, at the headers timeout", async () => {
    const listener = await start();
    const c = await rawConnect(listener.port);
    try {
      c.socket.write("GET /metrics HTTP/1.1\r\nHost: m\r\nX-Slow: ");
      await within(c.closed, 3000, "the connection's close");
      expect(c.received().toString("latin1")).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      c.socket.destroy();
    }
  });
});

describe("requireMetricsKey", () => {
  it("answers /metrics only to the key, and leaves other paths alone", async () => {
    const listener = await start({ route: requireMetricsKey(route, sha256(metricsKey)) });
    const url = `${listener.url}/metrics`;
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong-key-0123456789abcdef" },
    ];
    for (const headers of attempts) {
      const refused = await rawRequest(url, { headers });
      expect(refused.status).toBe(401);
      expect(refused.headers["www-authenticate"]).toBe("Bearer");
      expect(refused.body).not.toContain("coze_gateway");
    }
    const scraped = await rawRequest(url, { headers: { authorization: `Bearer ${metricsKey}` } });
    expect([scraped.status, scraped.body]).toEqual([200, "coze_gateway_up 1\n"]);
    const other = await rawRequest(`${listener.url}/other`);
    expect([other.status, other.body]).toEqual([200, "other"]);
  });
});
