import type { GatewayConfig } from "./config/index.js";
import type { Clock } from "./coze/clock.js";
import { createPools, type Pools } from "./coze/pools.js";
import { createTokenCache } from "./coze/token-cache.js";
import { createRuntimeHolder } from "./gateway-holder.js";
import { createReloader, type ReloadResult } from "./gateway-reload.js";
import { buildRuntime, type Runtime, type RuntimeShared } from "./gateway-runtime.js";
import {
  createObservability,
  createReloadMetrics,
  type LogFn,
  type Observability,
} from "./observability/index.js";
import { createPlaygroundHandler } from "./playground/playground-handler.js";
import {
  type Door,
  type GatewayServer,
  type MetricsListener,
  publicDoor,
  startGatewayServer,
  startMetricsListener,
} from "./server/index.js";
import { poolsOf, serviceRoutes } from "./service/index.js";

export type { ReloadResult } from "./gateway-reload.js";
export { createAuthenticator } from "./gateway-runtime.js";

/** A log function: one structured line per call. Never pass secrets. */
export type Log = LogFn;

/** Options for {@link startGateway}. */
export interface GatewayOptions {
  config: GatewayConfig;
  /**
   * Logs and metrics. Default: metrics of this gateway's own, and no log output (tests); the
   * program passes one that writes JSON lines to standard error.
   */
  observability?: Observability;
  clock?: Clock;
  userAgent?: string;
  /**
   * Longest silence on an OpenAI-compatible stream before a `: keep-alive` comment, in ms.
   * Default 15 000.
   */
  openAiHeartbeatMs?: number;
  /**
   * Model names the playground offers besides those ListModels returns, such as demo mode's
   * `workflow:{id}` names. Default none.
   */
  playgroundModels?: readonly string[];
}

/** A running gateway. */
export interface Gateway {
  readonly url: string;
  readonly port: number;
  /** Where `/metrics` is served when `server.metrics.listen` is set; else `undefined` (`url`). */
  readonly metricsUrl: string | undefined;
  /** Graceful shutdown: the server first (grace period for unary calls), then upstream pools. */
  close(): Promise<void>;
  /**
   * Reloads the config without a restart: `load` reads and validates it (`loadConfig`), then
   * keys, `server_secret`, channels and model routes, TLS files and the metrics key swap at once;
   * calls under way finish on the config they started with. An invalid config changes nothing.
   * Settings that need a restart keep their running values ({@link ReloadResult.needsRestart}).
   * Never rejects.
   */
  reload(load: () => Promise<GatewayConfig>): Promise<ReloadResult>;
}

/**
 * Starts the whole gateway for a validated config: connection pools, the shared token cache,
 * one Coze client per channel, the Connect services, the OpenAI-compatible REST shim on the
 * same service instances, the public routes (the playground when `server.playground` is on), and
 * the server on the configured port; `/metrics` on that port, or on `server.metrics.listen`, with
 * or without a key as `server.metrics` says.
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { config } = options;
  const observability = options.observability ?? createObservability({ level: "silent" });
  const { log } = observability;
  const pools = createPools();
  const tokens = createTokenCache({
    pools,
    clock: options.clock,
    userAgent: options.userAgent,
    onEvent: observability.onToken,
  });
  observability.observeTokenCache(() => tokens.stats());
  const shared: RuntimeShared = {
    pools,
    tokens,
    observability,
    clock: options.clock,
    userAgent: options.userAgent,
    openAiHeartbeatMs: options.openAiHeartbeatMs,
  };
  // What a config builds (keys, channels, routes, services) lives in a runtime, swapped whole
  // on reload; the server mounts the holder's doors once, and each call runs on its runtime.
  const holder = createRuntimeHolder(buildRuntime(config, shared), (old) =>
    release(old, holder.live(), pools, log),
  );
  const metricsAddress = config.server.metrics.listen;
  // The doors on the main port besides Connect: the OpenAI-compatible API, and the pages that
  // need no API key.
  const doors: Door[] = [holder.openAiDoor];
  if (metricsAddress === undefined) doors.push(publicDoor("/metrics", holder.metricsRoute));
  if (config.server.playground) {
    doors.push(
      publicDoor(
        "/playground",
        createPlaygroundHandler({ suggestedModels: options.playgroundModels, log }),
      ),
    );
  }
  const limits = {
    idleTimeoutMs: config.server.idleTimeoutMs,
    headersTimeoutMs: config.server.headersTimeoutMs,
    requestTimeoutMs: config.server.requestTimeoutMs,
    maxConcurrentStreams: config.server.maxConcurrentStreams,
    maxStreamsPerKey: config.server.maxStreamsPerKey,
  };
  let server: GatewayServer;
  let metricsListener: MetricsListener | undefined;
  try {
    if (metricsAddress !== undefined) {
      metricsListener = await startMetricsListener({
        ...metricsAddress,
        route: holder.metricsRoute,
        limits,
        log,
      });
    }
    server = await startGatewayServer({
      host: config.server.host,
      port: config.server.port,
      tls: config.server.tls,
      corsOrigins: config.server.corsOrigins,
      bodyLimitBytes: config.server.bodyLimitBytes,
      shutdownGraceMs: config.server.shutdownGraceMs,
      limits,
      routes: serviceRoutes(holder.services),
      authenticate: holder.authenticate,
      callerCurrent: holder.callerCurrent,
      doors,
      metrics: observability.metrics,
      log,
      requestLog: observability.requestLog,
      trustedProxies: config.server.trustedProxies,
    });
  } catch (err) {
    await metricsListener?.close();
    await pools.destroy();
    throw err;
  }
  const reloadMetrics = createReloadMetrics(observability.metrics.registry);
  reloadMetrics.inForce(config.sha256);
  const reload = createReloader({
    holder,
    build: (next, previous) => buildRuntime(next, shared, previous),
    setTls: (tls) => server.setTls(tls),
    discard: (unused) => release(unused, holder.live(), pools, log),
    log,
    metrics: reloadMetrics,
  });
  return {
    url: server.url,
    port: server.port,
    metricsUrl: metricsListener?.url,
    async close() {
      await Promise.all([server.close(), metricsListener?.close()]);
      await pools.close();
    },
    reload,
  };
}

/**
 * Releases what `old` holds that no runtime of `live` uses: the end-user sessions of its
 * channels that were replaced or removed, and the connection pools no live channel uses (each
 * closes once its requests under way are done).
 */
function release(old: Runtime, live: readonly Runtime[], pools: Pools, log: LogFn): void {
  const kept = new Set(live.flatMap((r) => r.channels.all));
  for (const channel of old.channels.all) if (!kept.has(channel)) channel.release();
  pools.retain([...kept].flatMap((c) => poolsOf(c.config))).catch((err: unknown) => {
    log("warn", "closing the connections of a removed channel failed", {
      error: err instanceof Error ? err.name : typeof err,
    });
  });
}
