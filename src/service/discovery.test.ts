import { describe, expect, it } from "vitest";
import { createManualClock } from "../../test/support/manual-clock.js";
import type { ChannelConfig, DiscoveryConfig, GatewayConfig } from "../config/index.js";
import type { CozeClient } from "../coze/client.js";
import type { ListOptions, ListResult } from "../coze/discovery.js";
import { CozeError } from "../coze/errors.js";
import type { Channel, Channels } from "./channels.js";
import { createDiscovery, type DiscoveryEvent } from "./discovery.js";
import { createModelTable } from "./discovery-table.js";

// The refresh loop on its own: a scripted list API instead of Coze, a manual clock.

type Lister = (kind: "bot" | "workflow" | "chatflow", options: ListOptions) => Promise<ListResult>;

function harness(lister: Lister, discovery: Partial<DiscoveryConfig> = {}) {
  const clock = createManualClock(0);
  const calls: string[] = [];
  const signals: AbortSignal[] = [];
  const config = {
    name: "main",
    spaceId: "7350000000000000001",
    isDefault: true,
    discovery: {
      enabled: true,
      naming: "id",
      intervalMs: 60_000,
      startWaitMs: 0,
      kinds: ["bot", "workflow", "chatflow"],
      maxModels: 10,
      ...discovery,
    },
  } as unknown as ChannelConfig;
  const list = (kind: "bot" | "workflow" | "chatflow", options: ListOptions) => {
    calls.push(kind);
    if (options.signal) signals.push(options.signal);
    return lister(kind, options);
  };
  const client = {
    discovery: {
      listBots: (o: ListOptions) => list("bot", o),
      listWorkflows: (o: ListOptions & { mode: "workflow" | "chatflow" }) => list(o.mode, o),
    },
  } as unknown as CozeClient;
  const channel: Channel = {
    name: "main",
    config,
    client,
    gate: undefined,
    clientFor: () => client,
    clientForUser: () => client,
    release() {},
  };
  const channels: Channels = { all: [channel], default: channel, get: () => channel };
  const models = createModelTable({ channels: [config], models: [] } as unknown as GatewayConfig);
  const logs: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const events: DiscoveryEvent[] = [];
  const discoveryLoop = createDiscovery({
    channels,
    models,
    clock,
    log: (level, msg, fields) => logs.push({ level, msg, ...(fields ? { fields } : {}) }),
    onRefresh: (e) => events.push(e),
    random: () => 0,
  });
  return { clock, calls, signals, models, logs, events, discovery: discoveryLoop };
}

const item = (id: string, appId?: string) => ({
  kind: "bot" as const,
  id,
  name: `n${id}`,
  description: "",
  appId,
});
const ok = (items: ListResult["items"] = [item("1")], truncated = false): Promise<ListResult> =>
  Promise.resolve({ items, truncated, pages: 1 });

describe("createDiscovery", () => {
  it("lists only the configured kinds, and leaves an app's workflows out", async () => {
    const h = harness(
      (kind) =>
        kind === "workflow"
          ? ok([
              { ...item("2"), kind: "workflow" },
              { ...item("3", "7400000000000000001"), kind: "workflow" },
            ])
          : ok(),
      { kinds: ["workflow"] },
    );
    await h.discovery.start();
    expect(h.calls).toEqual(["workflow"]);
    expect(h.models.listed().map((m) => m.route.name)).toEqual(["workflow:2"]);
    expect(h.logs.find((l) => l.msg === "discovered models changed")?.fields).toMatchObject({
      added: ["workflow:2"],
      appWorkflowsSkipped: 1,
    });
    await h.discovery.close();
  });

  it("retries a failed refresh after 5 s, doubling, never beyond the interval, then back to the interval", async () => {
    // The first three lists fail, then they work.
    let failing = 3;
    const h = harness(
      () =>
        failing-- > 0
          ? Promise.reject(
              new CozeError("unavailable", "bots.list: unavailable", { step: "bots.list" }),
            )
          : ok(),
      { kinds: ["bot"], intervalMs: 15_000 },
    );
    await h.discovery.start();
    expect(h.calls).toHaveLength(1);
    // Delays 5 000, then 10 000, then 15 000 (capped), then 15 000 again once it worked.
    for (const [wait, calls] of [
      [5_000, 2],
      [10_000, 3],
      [15_000, 4],
      [15_000, 5],
    ] as const) {
      await h.clock.advance(wait - 1);
      expect(h.calls).toHaveLength(calls - 1);
      await h.clock.advance(1);
      expect(h.calls).toHaveLength(calls);
    }
    expect(h.events.map((e) => e.outcome)).toEqual(["failed", "failed", "failed", "ok", "ok"]);
    expect(h.logs.filter((l) => l.level === "warn").map((l) => l.fields?.code)).toEqual([
      "unavailable",
      "unavailable",
      "unavailable",
    ]);
    await h.discovery.close();
    expect(h.clock.pendingSleeps()).toBe(0);
  });

  it("warns once when a list is cut at max_models, not on every refresh", async () => {
    const h = harness(() => ok([item("1")], true), { kinds: ["bot"] });
    await h.discovery.start();
    await h.clock.advance(60_000);
    await h.clock.advance(60_000);
    expect(h.calls).toHaveLength(3);
    expect(h.logs.filter((l) => l.msg === "discovery list cut at max_models")).toHaveLength(1);
    await h.discovery.close();
  });

  it("waits at most start_wait_ms at start, and close cancels a list under way", async () => {
    const h = harness(
      (_kind, options) =>
        new Promise((_resolve, reject) => {
          options.signal?.addEventListener("abort", () => reject(options.signal?.reason));
        }),
      { kinds: ["bot"], startWaitMs: 2_000 },
    );
    let started = false;
    const starting = h.discovery.start().then(() => {
      started = true;
    });
    await h.clock.advance(1_999);
    expect(started).toBe(false);
    await h.clock.advance(1);
    await starting;
    expect(h.logs.map((l) => l.msg)).toContain(
      "discovery's first list is not in yet; starting without it",
    );
    await h.discovery.close();
    expect(h.signals[0]?.aborted).toBe(true);
    expect(h.events).toEqual([]);
    expect(h.clock.pendingSleeps()).toBe(0);
  });
});
