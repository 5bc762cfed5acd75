import { describe, expect, it } from "vitest";
import { configErrorHarness } from "../../test/support/config-fixtures.js";
import type { GatewayConfig } from "./gateway-config.js";

// Issue 16: how long a workflow's question waits for the reply that resumes it.
const { expectError, rejects } = configErrorHarness();

const withInterrupts = (value: unknown) => (c: Record<string, unknown>) => {
  c.interrupts = value;
};

describe("interrupts", () => {
  it("keeps a question for a day unless told otherwise, and takes 0 as off", async () => {
    const loaded = async (value: unknown) =>
      ((await rejects(withInterrupts(value))) as GatewayConfig).interrupts;
    expect(await loaded(undefined)).toEqual({ ttlSeconds: 86_400 });
    expect(await loaded({})).toEqual({ ttlSeconds: 86_400 });
    expect(await loaded({ ttl_seconds: 0 })).toEqual({ ttlSeconds: 0 });
    expect(await loaded({ ttl_seconds: 604_800 })).toEqual({ ttlSeconds: 604_800 });
  });

  it("names the field of a bad setting", async () => {
    await expectError(
      rejects(withInterrupts({ ttl_seconds: 604_801 })),
      "gateway.yaml: interrupts.ttl_seconds: must be an integer from 0 to 604800",
    );
    await expectError(
      rejects(withInterrupts({ ttl_seconds: "1d" })),
      "gateway.yaml: interrupts.ttl_seconds: must be an integer from 0 to 604800, not a string",
    );
    await expectError(
      rejects(withInterrupts({ ttl: 60 })),
      "gateway.yaml: interrupts.ttl: is not a known field; expected one of: ttl_seconds",
    );
    await expectError(
      rejects(withInterrupts([60])),
      "gateway.yaml: interrupts: must be a mapping, not a list",
    );
  });
});
