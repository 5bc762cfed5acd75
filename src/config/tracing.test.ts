import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  configErrorHarness,
  createTempDir,
  parseObject,
  type TempDir,
  validConfig,
} from "../../test/support/config-fixtures.js";

const { key, expectError, rejects } = configErrorHarness();
const secret = "otlp-secret-value-7c1d";

let tmp: TempDir;
beforeAll(async () => {
  tmp = await createTempDir();
});
afterAll(async () => {
  await tmp.cleanup();
});

function load(tracing: unknown, env: Record<string, string> = {}) {
  const config = validConfig(key);
  config.tracing = tracing;
  return parseObject(config, tmp.dir, env);
}

describe("the tracing section", () => {
  it("is off when absent", async () => {
    expect((await load(undefined)).tracing).toBeUndefined();
  });

  it("has defaults for everything but the endpoint", async () => {
    const config = await load({ otlp_endpoint: "http://127.0.0.1:4318/v1/traces" });
    expect(config.tracing).toEqual({
      otlpEndpoint: "http://127.0.0.1:4318/v1/traces",
      protocol: "http/protobuf",
      headers: {},
      serviceName: "coze-gateway",
      sampleRatio: 1,
      maxQueueSpans: 2048,
      exportTimeoutMs: 10_000,
    });
    expect(config.warnings).toEqual([]);
  });

  it("gives a bare collector address the traces path", async () => {
    const config = await load({ otlp_endpoint: "https://otel.example.com:4318" });
    expect(config.tracing?.otlpEndpoint).toBe("https://otel.example.com:4318/v1/traces");
  });

  it("reads headers as OTEL_EXPORTER_OTLP_HEADERS writes them, from the environment", async () => {
    const config = await load(
      {
        otlp_endpoint: "http://localhost:4318/v1/traces",
        protocol: "http/json",
        headers: "env:OTLP_HEADERS",
        service_name: "gateway-eu",
        sample_ratio: 0.25,
        max_queue_spans: 16,
        export_timeout_ms: 1000,
      },
      { OTLP_HEADERS: ` Authorization=Bearer%20${secret} , x-Scope-OrgID=tenant-1\n` },
    );
    expect(config.tracing).toMatchObject({
      protocol: "http/json",
      serviceName: "gateway-eu",
      sampleRatio: 0.25,
      maxQueueSpans: 16,
      exportTimeoutMs: 1000,
    });
    expect({ ...config.tracing?.headers }).toEqual({
      authorization: `Bearer ${secret}`,
      "x-scope-orgid": "tenant-1",
    });
  });

  it("reads headers from a file, and warns of plain http to a remote collector", async () => {
    const path = await tmp.write("otlp-headers", `api-key=${secret}\n`);
    const config = await load({
      otlp_endpoint: "http://otel.internal:4318",
      headers: `file:${path}`,
    });
    expect(config.tracing?.headers).toEqual({ "api-key": secret });
    expect(config.warnings).toEqual([
      "gateway.yaml: tracing.otlp_endpoint: uses plain http to otel.internal:4318; spans and export headers would travel unencrypted",
    ]);
  });

  it("keeps a header named __proto__ a header", async () => {
    const config = await load({ otlp_endpoint: "http://[::1]:4318", headers: "__proto__=x" });
    expect(Object.getPrototypeOf(config.tracing?.headers)).toBeNull();
    expect(Object.entries(config.tracing?.headers ?? {})).toEqual([["__proto__", "x"]]);
  });
});

describe("tracing errors", () => {
  const at = "gateway.yaml: tracing";
  const bad = (tracing: unknown, env?: Record<string, string>) =>
    rejects((c) => {
      c.tracing = tracing;
    }, env);

  it("needs an endpoint that is an http(s) URL without credentials or query", async () => {
    const rule = "an http or https URL, e.g. http://127.0.0.1:4318/v1/traces (no query)";
    await expectError(bad({}), `${at}.otlp_endpoint: is missing; expected ${rule}`);
    await expectError(bad({ otlp_endpoint: "otel:4318" }), `${at}.otlp_endpoint: must be ${rule}`);
    await expectError(
      bad({ otlp_endpoint: "ftp://otel/v1/traces" }),
      `${at}.otlp_endpoint: must be ${rule}`,
    );
    await expectError(
      bad({ otlp_endpoint: "http://otel/v1/traces?key=1" }),
      `${at}.otlp_endpoint: must be ${rule}`,
    );
    await expectError(
      bad({ otlp_endpoint: `https://user:${secret}@otel/v1/traces` }),
      `${at}.otlp_endpoint: must not hold a user name or password; put credentials in headers`,
    );
  });

  it("names unknown keys, protocols and ranges", async () => {
    const endpoint = "http://127.0.0.1:4318";
    await expectError(
      bad({ otlp_endpoint: endpoint, sample_rate: 1 }),
      `${at}.sample_rate: is not a known field (did you mean sample_ratio?); expected one of: otlp_endpoint, protocol, headers, service_name, sample_ratio, max_queue_spans, export_timeout_ms`,
    );
    await expectError(
      bad({ otlp_endpoint: endpoint, protocol: "grpc" }),
      `${at}.protocol: must be http/protobuf or http/json`,
    );
    await expectError(
      bad({ otlp_endpoint: endpoint, sample_ratio: 1.5 }),
      `${at}.sample_ratio: must be a number from 0 to 1`,
    );
    await expectError(
      bad({ otlp_endpoint: endpoint, sample_ratio: "all" }),
      `${at}.sample_ratio: must be a number from 0 to 1, not a string`,
    );
    await expectError(
      bad({ otlp_endpoint: endpoint, max_queue_spans: 8 }),
      `${at}.max_queue_spans: must be an integer from 16 to 1000000`,
    );
    await expectError(
      bad({ otlp_endpoint: endpoint, service_name: " padded" }),
      `${at}.service_name: must be 1 to 128 printable ASCII characters`,
    );
  });

  const from = "(from env:H)";
  it.each([
    [
      "an entry without =",
      `authorization${secret}`,
      `entry 1 ${from} is not name=value; expected name=value pairs separated by commas, env:NAME or file:PATH`,
    ],
    ["a bad name", `x y=${secret}`, `entry 1 ${from} does not start with an HTTP header name`],
    [
      "a header the gateway sets",
      `content-type=${secret}`,
      `entry 1 ${from}: content-type is set by the gateway`,
    ],
    ["a header twice", `a=1,A=${secret}`, `entry 2 ${from}: a appears twice`],
    [
      "bad percent-encoding",
      `a=%zz${secret}`,
      `entry 1 ${from}: the value of a is not valid percent-encoding`,
    ],
    [
      "a line break",
      `a=x%0D%0A${secret}`,
      `entry 1 ${from}: the value of a must be printable ASCII and not empty`,
    ],
    [
      "an empty value",
      "a=",
      `entry 1 ${from}: the value of a must be printable ASCII and not empty`,
    ],
  ])("refuses headers with %s, never quoting a value", async (_, value, problem) => {
    const err = await expectError(
      bad({ otlp_endpoint: "http://127.0.0.1:4318", headers: "env:H" }, { H: value }),
      `${at}.headers: ${problem}`,
    );
    expect(err.message).not.toContain(secret);
  });
});
