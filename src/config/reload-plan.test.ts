import { describe, expect, it } from "vitest";
import { createTestCertificate } from "../../test/support/certificates.js";
import { generateRsaKey } from "../../test/support/config-fixtures.js";
import { demoConfig } from "../demo.js";
import { hashApiKey } from "./api-keys.js";
import type { GatewayConfig } from "./gateway-config.js";
import { planReload } from "./reload-plan.js";

// Issue 15: what a reload applies in place, and what waits for a restart.
const app = {
  clientId: "1",
  publicKeyId: "kid",
  privateKeyPem: generateRsaKey().pkcs8,
  publicKeyPem: "",
};

function config(edit: (c: GatewayConfig) => void = () => {}): GatewayConfig {
  const c = demoConfig({
    port: 8080,
    emulatorUrl: "http://127.0.0.1:1",
    app,
    apiKey: "k".repeat(20),
  });
  c.source = "gateway.yaml";
  edit(c);
  return c;
}

describe("planReload", () => {
  it("takes keys, secret, channels and routes from the new file, and needs no restart for them", () => {
    const next = config((c) => {
      c.serverSecret = Buffer.from("another-server-secret-0123456789abcdef");
      c.apiKeys.push({
        name: "carol",
        sha256: hashApiKey("c".repeat(20)),
        models: undefined,
        rawCozeIds: false,
      });
      c.models = c.models.slice(1);
    });
    const plan = planReload(config(), next);
    expect(plan.needsRestart).toEqual([]);
    expect(plan.tls).toBeUndefined();
    expect(plan.config).toEqual(next);
  });

  it("keeps the running listener settings, naming each change", () => {
    const plan = planReload(
      config(),
      config((c) => {
        c.server.port = 9090;
        c.server.host = "0.0.0.0";
        c.server.bodyLimitBytes = 1024;
        c.server.maxStreamsPerKey = 3;
        c.server.trustedProxies = ["10.0.0.0/8"];
        c.server.metrics.listen = { host: "127.0.0.1", port: 9100 };
        c.server.metrics.keySha256 = hashApiKey("metrics-key-0123456789");
      }),
    );
    expect(plan.needsRestart).toEqual([
      'gateway.yaml: server.host: changed (running "127.0.0.1", file "0.0.0.0"); needs a restart',
      "gateway.yaml: server.port: changed (running 8080, file 9090); needs a restart",
      "gateway.yaml: server.body_limit_bytes: changed (running 10485760, file 1024); needs a restart",
      "gateway.yaml: server.max_streams_per_key: changed (running 256, file 3); needs a restart",
      'gateway.yaml: server.trusted_proxies: changed (running [], file ["10.0.0.0/8"]); needs a restart',
      "gateway.yaml: server.metrics.listen: changed (running the main port, file 127.0.0.1:9100); needs a restart",
    ]);
    const running = config().server;
    expect(plan.config.server).toEqual({
      ...running,
      // The metrics key applies at once.
      metrics: { listen: undefined, keySha256: hashApiKey("metrics-key-0123456789") },
    });
  });

  it("keeps the running tracer, naming the change without its headers", () => {
    const traced = (endpoint: string, header: string) =>
      config((c) => {
        c.tracing = {
          otlpEndpoint: endpoint,
          protocol: "http/protobuf",
          headers: { authorization: header },
          serviceName: "coze-gateway",
          sampleRatio: 1,
          maxQueueSpans: 2048,
          exportTimeoutMs: 5000,
        };
      });
    const running = traced("http://127.0.0.1:4318/v1/traces", "Bearer first-secret");
    const plan = planReload(running, traced("http://10.0.0.9:4318/v1/traces", "Bearer second"));
    expect(plan.needsRestart).toEqual(["gateway.yaml: tracing: changed; needs a restart"]);
    expect(plan.config.tracing).toEqual(running.tracing);
    // Turning it off needs a restart too.
    expect(planReload(running, config()).config.tracing).toEqual(running.tracing);
  });

  it("keeps the running state store, naming the change without its URL", () => {
    const redis = (url: string) =>
      config((c) => {
        c.state = {
          store: "redis",
          url,
          timeoutMs: 100,
          fail: "open",
          prefix: "cg:",
          flushMs: 50,
          share: 64,
        };
      });
    const running = redis("redis://:first-password@10.0.0.1:6379");
    const plan = planReload(running, redis("redis://:second-password@10.0.0.2:6379"));
    expect(plan.needsRestart).toEqual(["gateway.yaml: state: changed; needs a restart"]);
    expect(plan.config.state).toEqual(running.state);
    expect(planReload(config(), running).config.state).toBeUndefined();
    expect(
      planReload(running, redis("redis://:first-password@10.0.0.1:6379")).needsRestart,
    ).toEqual([]);
  });

  it("applies renewed TLS files, but turning TLS on or off needs a restart", () => {
    const [first, second] = [createTestCertificate(), createTestCertificate()];
    const tls = (t: { cert: string; key: string } | undefined) =>
      config((c) => {
        c.server.tls = t;
      });
    const renewed = planReload(tls(first), tls(second));
    expect(renewed).toMatchObject({ needsRestart: [], tls: second });
    expect(renewed.config.server.tls).toEqual(second);
    expect(planReload(tls(first), tls(first)).tls).toBeUndefined();

    const on = planReload(tls(undefined), tls(first));
    expect(on.needsRestart).toEqual([
      "gateway.yaml: server.tls: changed (TLS turned on); needs a restart",
    ]);
    expect(on).toMatchObject({ tls: undefined, config: { server: { tls: undefined } } });
    const off = planReload(tls(first), tls(undefined));
    expect(off.needsRestart).toEqual([
      "gateway.yaml: server.tls: changed (TLS turned off); needs a restart",
    ]);
    expect(off.config.server.tls).toEqual(first);
    // No certificate or key text in any message.
    for (const message of [...on.needsRestart, ...off.needsRestart]) {
      expect(message).not.toContain("BEGIN");
    }
  });
});
