import { describe, expect, it } from "vitest";
import { configErrorHarness } from "../../test/support/config-fixtures.js";
import type { GatewayConfig } from "./gateway-config.js";

// Issue 15: api_keys[].limits, channels[].limits and the state section.
const { expectError, rejects } = configErrorHarness();

const loads = (edit: Parameters<typeof rejects>[0], env = {}) =>
  rejects(edit, env) as Promise<GatewayConfig>;

describe("api_keys[].limits", () => {
  it("reads every limit, with a monthly quota by default", async () => {
    const config = await loads((c) => {
      (c.api_keys[0] as Record<string, unknown>).limits = {
        requests_per_minute: 60,
        tokens_per_minute: 40_000,
        tokens_per_day: 1_000_000,
        max_streams: 4,
        quota: { tokens: 5_000_000 },
      };
    });
    expect(config.apiKeys[0]?.limits).toEqual({
      requestsPerMinute: 60,
      tokensPerMinute: 40_000,
      tokensPerDay: 1_000_000,
      maxStreams: 4,
      quota: { tokens: 5_000_000, per: "month" },
    });
  });

  it("takes an empty block as no limits", async () => {
    const config = await loads((c) => {
      (c.api_keys[0] as Record<string, unknown>).limits = {};
    });
    expect(config.apiKeys[0]?.limits).toBeUndefined();
  });

  it("names the key and the field of a bad limit", async () => {
    const edit = (limits: unknown) => (c: Parameters<Parameters<typeof rejects>[0]>[0]) => {
      (c.api_keys[0] as Record<string, unknown>).limits = limits;
    };
    await expectError(
      rejects(edit({ requests_per_minute: 0 })),
      "gateway.yaml: api_keys[alice].limits.requests_per_minute: must be an integer from 1 to 1000000",
    );
    await expectError(
      rejects(edit({ rpm: 10 })),
      "gateway.yaml: api_keys[alice].limits.rpm: is not a known field; expected one of: requests_per_minute, tokens_per_minute, tokens_per_day, max_streams, quota",
    );
    await expectError(
      rejects(edit({ quota: { per: "day" } })),
      "gateway.yaml: api_keys[alice].limits.quota.tokens: is missing; expected an integer from 1 to 1000000000000: the tokens the key may use per period",
    );
    await expectError(
      rejects(edit({ quota: { tokens: 10, per: "week" } })),
      "gateway.yaml: api_keys[alice].limits.quota.per: must be day or month",
    );
    await expectError(
      rejects(edit({ tokens_per_day: "1000" })),
      "gateway.yaml: api_keys[alice].limits.tokens_per_day: must be an integer from 1 to 1000000000000, not a string",
    );
  });
});

describe("channels[].limits", () => {
  it("reads the cap with its queue defaults", async () => {
    const config = await loads((c) => {
      (c.channels[0] as Record<string, unknown>).limits = { max_concurrent: 8 };
    });
    expect(config.channels[0]?.limits).toEqual({
      maxConcurrent: 8,
      queue: 100,
      queueTimeoutMs: 30_000,
    });
  });

  it("warns that a queue without max_concurrent does nothing", async () => {
    const config = await loads((c) => {
      (c.channels[0] as Record<string, unknown>).limits = { queue: 5 };
    });
    expect(config.warnings).toEqual([
      "gateway.yaml: channels[cn-main].limits: queue and queue_timeout_ms do nothing without max_concurrent",
    ]);
  });

  it("names the channel and the field of a bad value", async () => {
    await expectError(
      rejects((c) => {
        (c.channels[0] as Record<string, unknown>).limits = { max_concurrent: 0 };
      }),
      "gateway.yaml: channels[cn-main].limits.max_concurrent: must be an integer from 1 to 100000",
    );
  });
});

describe("state", () => {
  it("is in memory by default", async () => {
    expect((await loads(() => {})).state).toEqual({
      store: "memory",
      url: "",
      timeoutMs: 50,
      fail: "open",
      prefix: "coze-gateway:",
      flushMs: 50,
      share: 64,
    });
  });

  it("reads a Redis store, its URL from the environment", async () => {
    const config = await loads(
      (c) => {
        c.state = { store: "redis", url: "env:REDIS_URL", timeout_ms: 20, fail: "closed" };
      },
      { REDIS_URL: "redis://:s3cret-password@10.0.0.5:6380/2\n" },
    );
    expect(config.state).toMatchObject({
      store: "redis",
      url: "redis://:s3cret-password@10.0.0.5:6380/2",
      timeoutMs: 20,
      fail: "closed",
    });
  });

  it("refuses a Redis store without a usable URL, never quoting it", async () => {
    await expectError(
      rejects((c) => {
        c.state = { store: "redis" };
      }),
      "gateway.yaml: state.url: is missing; expected a Redis URL redis://[:password@]host[:port][/db] or rediss://…, env:NAME or file:PATH",
    );
    const err = await expectError(
      rejects((c) => {
        c.state = { store: "redis", url: "http://:hunter2-password@cache:6379" };
      }),
      "gateway.yaml: state.url: must be a Redis URL redis://[:password@]host[:port][/db] or rediss://…",
    );
    expect(err.message).not.toContain("hunter2");
    await expectError(
      rejects((c) => {
        c.state = { url: "redis://cache:6379" };
      }),
      "gateway.yaml: state.url: is set but store is memory; set store: redis",
    );
    await expectError(
      rejects((c) => {
        c.state = { store: "postgres" };
      }),
      "gateway.yaml: state.store: must be memory or redis",
    );
    await expectError(
      rejects((c) => {
        c.state = { fail: "shut" };
      }),
      "gateway.yaml: state.fail: must be open or closed",
    );
  });
});
