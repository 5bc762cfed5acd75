import { afterEach, describe, expect, it } from "vitest";
import { rawRequest } from "../test/support/raw-http.js";
import { hashApiKey } from "./config/index.js";
import { type Demo, startDemo } from "./demo.js";
import { type Gateway, startGateway } from "./gateway.js";

// Issue 13: where /metrics is served, and whether it needs a key, as server.metrics says.
const metricsKey = "metrics-key-0123456789abcdef";

let demo: Demo | undefined;
let gateway: Gateway | undefined;
afterEach(async () => {
  await gateway?.close();
  await demo?.close();
  gateway = undefined;
  demo = undefined;
});

const start = async (metrics: Demo["config"]["server"]["metrics"]) => {
  demo = await startDemo({ port: 0, deltaMs: 0 });
  demo.config.server.metrics = metrics;
  gateway = await startGateway({ config: demo.config });
  return gateway;
};

const scrape = (url: string, key?: string) =>
  rawRequest(`${url}/metrics`, key ? { headers: { authorization: `Bearer ${key}` } } : {});

describe("server.metrics", () => {
  it("serves /metrics on the main port without a key by default", async () => {
    const gw = await start({ listen: undefined, keySha256: undefined });
    expect(gw.metricsUrl).toBeUndefined();
    const res = await scrape(gw.url);
    expect(res.status).toBe(200);
    expect(res.body).toContain("coze_gateway_requests_total");
  });

  it("asks for the key on the main port when only a key is set", async () => {
    const gw = await start({ listen: undefined, keySha256: hashApiKey(metricsKey) });
    expect((await scrape(gw.url)).status).toBe(401);
    const res = await scrape(gw.url, metricsKey);
    expect(res.status).toBe(200);
    expect(res.body).toContain("coze_gateway_requests_total");
  });

  it("serves /metrics on its own address, behind the key, and no longer on the main port", async () => {
    const gw = await start({
      listen: { host: "127.0.0.1", port: 0 },
      keySha256: hashApiKey(metricsKey),
    });
    expect(gw.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const metricsUrl = gw.metricsUrl ?? "";
    expect(metricsUrl).not.toBe(gw.url);
    expect((await scrape(metricsUrl)).status).toBe(401);
    const res = await scrape(metricsUrl, metricsKey);
    expect(res.status).toBe(200);
    expect(res.body).toContain("coze_gateway_requests_total");
    expect((await scrape(gw.url, metricsKey)).status).toBe(404);
    expect((await rawRequest(`${gw.url}/healthz`)).status).toBe(200);
  });
});
