import { Counter, Gauge, type Registry } from "prom-client";

/** One kind's refresh on one channel, as discovery reports it (`DiscoveryEvent`). */
export interface DiscoveryRefresh {
  channel: string;
  kind: "bot" | "workflow" | "chatflow";
  outcome: "ok" | "failed";
  /** Names that channel's items of that kind are served under now. */
  models: number;
}

/**
 * Registers discovery's metrics on `registry` and returns what feeds them: a counter of
 * refreshes by channel, kind and outcome, and a gauge of the discovered models served by channel
 * and kind (kept as it was when a refresh fails: the last list is still served). Labels are
 * configured channel names and three kinds: bounded.
 */
export function createDiscoveryMetrics(registry: Registry): (event: DiscoveryRefresh) => void {
  const refreshes = new Counter({
    name: "coze_gateway_discovery_refreshes_total",
    help: "Discovery list refreshes by channel, kind (bot, workflow, chatflow) and outcome (ok, failed: the last list is kept).",
    labelNames: ["channel", "kind", "outcome"] as const,
    registers: [registry],
  });
  const models = new Gauge({
    name: "coze_gateway_discovered_models",
    help: "Model names served from discovery, by channel and kind.",
    labelNames: ["channel", "kind"] as const,
    registers: [registry],
  });
  return (event) => {
    refreshes.inc({ channel: event.channel, kind: event.kind, outcome: event.outcome });
    models.set({ channel: event.channel, kind: event.kind }, event.models);
  };
}
