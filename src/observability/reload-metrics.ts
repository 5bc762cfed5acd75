import { Counter, Gauge, type Registry } from "prom-client";

/** How a config reload ended. */
export type ReloadOutcome = "applied" | "invalid" | "failed";

/** The figures of config reloads, on the gateway's registry. */
export interface ReloadMetrics {
  /**
   * Counts a reload by outcome; an applied one also names the config now in force (`sha256`:
   * the hash's first 12 hex digits, never the content) and the time it applied.
   */
  reloaded(outcome: ReloadOutcome, sha256?: string): void;
  /** Names the config in force (at start, and after each applied reload). */
  inForce(sha256: string | undefined): void;
}

/**
 * Registers `coze_gateway_config_reloads_total{outcome}`,
 * `coze_gateway_config_last_reload_successful`,
 * `coze_gateway_config_last_reload_success_timestamp_seconds` (as Prometheus names its own) and
 * `coze_gateway_config_info{sha256}` (1 for the config in force: replicas on one config show one
 * hash).
 */
export function createReloadMetrics(
  registry: Registry,
  now: () => number = Date.now,
): ReloadMetrics {
  const reloads = new Counter({
    name: "coze_gateway_config_reloads_total",
    help: "Config reloads (SIGHUP) by outcome: applied, invalid (the file has problems; the running config stays), failed.",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  for (const outcome of ["applied", "invalid", "failed"] as const) reloads.inc({ outcome }, 0);
  const successful = new Gauge({
    name: "coze_gateway_config_last_reload_successful",
    help: "1 when the last config reload applied (or none was tried), 0 when it was refused.",
    registers: [registry],
  });
  successful.set(1);
  const successAt = new Gauge({
    name: "coze_gateway_config_last_reload_success_timestamp_seconds",
    help: "When the config in force was loaded (start or reload), in seconds since the epoch.",
    registers: [registry],
  });
  successAt.set(now() / 1000);
  const info = new Gauge({
    name: "coze_gateway_config_info",
    help: "1 for the config in force, by the first 12 hex digits of its file's SHA-256 (empty for demo mode).",
    labelNames: ["sha256"] as const,
    registers: [registry],
  });
  const inForce = (sha256: string | undefined) => {
    info.reset();
    info.set({ sha256: sha256?.slice(0, 12) ?? "" }, 1);
  };
  return {
    reloaded(outcome, sha256) {
      reloads.inc({ outcome });
      successful.set(outcome === "applied" ? 1 : 0);
      if (outcome !== "applied") return;
      successAt.set(now() / 1000);
      inForce(sha256);
    },
    inForce,
  };
}
