import { isDeepStrictEqual } from "node:util";
import type { GatewayConfig, ServerConfig } from "./gateway-config.js";

/** What a config reload applies, and what it leaves for the next restart. */
export interface ReloadPlan {
  /**
   * The config to run from now on: the new file's, except the settings that need a restart,
   * which keep their running values (so the running server and what is built anew agree).
   */
  config: GatewayConfig;
  /**
   * One sentence per setting the new file changes that only a restart applies, naming the
   * field, e.g. `gateway.yaml: server.port: changed (running 8080, file 9090); needs a restart`.
   * No value of a secret field is shown.
   */
  needsRestart: string[];
  /** The new certificate and key, when the file changed them and the server speaks TLS. */
  tls: ServerConfig["tls"];
}

/**
 * Top-level sections that configure what the process holds once (a connection to a store, say):
 * a change keeps the running section, named as needing a restart. Each entry: the config's
 * field and the file's name for it. Every other section outside `server` swaps on reload.
 */
const restartSections: readonly { field: keyof GatewayConfig; name: string }[] = [
  // The state store is opened once, and the limiter's counts live in it.
  { field: "state", name: "state" },
  // The tracer and its exporter (the SDK is loaded only when tracing is on at start).
  { field: "tracing", name: "tracing" },
];

/** The `server` fields a reload applies in place; every other one needs a restart. */
const live = new Set<keyof ServerConfig>(["tls", "metrics"]);

/** The file's name of each `server` field, for messages. */
const fieldNames: Record<keyof ServerConfig, string> = {
  host: "host",
  port: "port",
  tls: "tls",
  corsOrigins: "cors_origins",
  bodyLimitBytes: "body_limit_bytes",
  shutdownGraceMs: "shutdown_grace_ms",
  playground: "playground",
  idleTimeoutMs: "idle_timeout_ms",
  headersTimeoutMs: "headers_timeout_ms",
  requestTimeoutMs: "request_timeout_ms",
  maxConcurrentStreams: "max_concurrent_streams",
  maxStreamsPerKey: "max_streams_per_key",
  metrics: "metrics",
  trustedProxies: "trusted_proxies",
};

/**
 * Plans the reload of `running` to `next` (both validated). Keys, `server_secret`, channels and
 * model routes, and whatever else lies outside `server`, are taken from `next`. Of `server`,
 * only these apply in place: new TLS certificate and key files (while TLS stays on) and
 * `metrics.key`; the listening address and port, turning TLS on or off, `metrics.listen`, CORS
 * origins, body limit, timeouts, stream caps, the playground and trusted proxies keep their
 * running values, each change named in {@link ReloadPlan.needsRestart}.
 */
export function planReload(running: GatewayConfig, next: GatewayConfig): ReloadPlan {
  const needsRestart: string[] = [];
  const server: Record<string, unknown> = { ...next.server };
  const before = running.server;
  const restart = (field: string, shown: string) =>
    needsRestart.push(`${next.source}: server.${field}: changed${shown}; needs a restart`);
  for (const key of Object.keys(fieldNames) as (keyof ServerConfig)[]) {
    if (live.has(key) || isDeepStrictEqual(before[key], next.server[key])) continue;
    server[key] = before[key];
    restart(fieldNames[key], ` (running ${shown(before[key])}, file ${shown(next.server[key])})`);
  }
  // TLS on or off changes the listener; new files for a TLS server apply to new connections.
  let tls: ServerConfig["tls"];
  if ((before.tls === undefined) !== (next.server.tls === undefined)) {
    server.tls = before.tls;
    restart("tls", before.tls === undefined ? " (TLS turned on)" : " (TLS turned off)");
  } else if (next.server.tls !== undefined && !isDeepStrictEqual(before.tls, next.server.tls)) {
    tls = next.server.tls;
  }
  // The metrics key applies at once; the address /metrics is served on does not.
  const listen = before.metrics.listen;
  if (!isDeepStrictEqual(listen, next.server.metrics.listen)) {
    server.metrics = { ...next.server.metrics, listen };
    const where = (l: typeof listen) => (l === undefined ? "the main port" : `${l.host}:${l.port}`);
    restart(
      "metrics.listen",
      ` (running ${where(listen)}, file ${where(next.server.metrics.listen)})`,
    );
  }
  const config: GatewayConfig = { ...next, server: server as unknown as ServerConfig };
  for (const { field, name } of restartSections) {
    if (isDeepStrictEqual(running[field], next[field])) continue;
    Object.assign(config, { [field]: running[field] });
    needsRestart.push(`${next.source}: ${name}: changed; needs a restart`);
  }
  return {
    config,
    needsRestart,
    tls,
  };
}

/** A short, safe rendering of a non-secret server setting. */
function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? "none";
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
