import { Counter, Gauge, type Registry } from "prom-client";
import type { LimitKind } from "../service/index.js";
import type { StateHealth } from "../state/index.js";

/** The limits' Prometheus metrics, apart from Coze's own rate limits (upstream outcomes). */
export interface LimitMetrics {
  /** A call refused by one of the gateway's own limits. */
  refused(kind: LimitKind): void;
  /** A call whose limits could not be checked (the state store failed): let through or refused. */
  unchecked(mode: "open" | "closed"): void;
}

/** What the gauges read at scrape time. */
export interface LimitGaugeSources {
  state(): StateHealth;
  /** Each capped channel's calls to Coze in flight and waiting. */
  channels(): readonly { name: string; active: number; waiting: number }[];
}

/**
 * Registers the limits' metrics on `registry` (the gateway's): refusals by limit, calls let
 * through or refused while the state store was unreachable, whether it answers, and each capped
 * channel's calls in flight and waiting. Labels hold our own words and channel names, never a
 * key's name.
 */
export function createLimitMetrics(registry: Registry, sources: LimitGaugeSources): LimitMetrics {
  const refusals = new Counter({
    name: "coze_gateway_limit_refusals_total",
    help: "Calls refused by the gateway's own limits, by limit: requests, tokens, quota, streams (per key), channel (a channel's cap on calls to Coze). Coze's own rate limits count as upstream outcome rate_limited.",
    labelNames: ["limit"] as const,
    registers: [registry],
  });
  const unchecked = new Counter({
    name: "coze_gateway_limits_unchecked_total",
    help: "Calls whose limits could not be checked because the state store was unreachable: let through (fail open) or refused (fail closed).",
    labelNames: ["mode"] as const,
    registers: [registry],
  });
  new Gauge({
    name: "coze_gateway_state_up",
    help: "1 when the state store (limit counters and quotas) answers, 0 when it is unreachable.",
    registers: [registry],
    collect() {
      this.set(sources.state().ok ? 1 : 0);
    },
  });
  new Gauge({
    name: "coze_gateway_channel_calls",
    help: "Calls to Coze of channels with max_concurrent: in flight (active) and waiting for a slot (waiting).",
    labelNames: ["channel", "state"] as const,
    registers: [registry],
    collect() {
      for (const c of sources.channels()) {
        this.set({ channel: c.name, state: "active" }, c.active);
        this.set({ channel: c.name, state: "waiting" }, c.waiting);
      }
    },
  });
  return {
    refused: (kind) => refusals.inc({ limit: kind }),
    unchecked: (mode) => unchecked.inc({ mode }),
  };
}
