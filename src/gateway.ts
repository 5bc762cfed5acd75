import type { GatewayConfig, StateConfig } from "./config/index.js";
import { stateDefaults } from "./config/index.js";
import { type Clock, systemClock } from "./coze/clock.js";
import { createPools, type Pools } from "./coze/pools.js";
import { createTokenCache } from "./coze/token-cache.js";
import { createRuntimeHolder, type RuntimeHolder } from "./gateway-holder.js";
import { createReloader, type ReloadResult } from "./gateway-reload.js";
import { buildRuntime, type Runtime, type RuntimeShared } from "./gateway-runtime.js";
import { createKeyLimiter, createLimitMetrics } from "./limits/index.js";
import { createDiscoveryMetrics } from "./observability/discovery-metrics.js";
import {
  createObservability,
  createReloadMetrics,
  createTracing,
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
import { createHeldRuns, poolsOf, serviceRoutes } from "./service/index.js";
import { createStateStore } from "./state/index.js";

export type { ReloadResult } from "./gateway-reload.js";
export { createAuthenticator } from "./gateway-runtime.js";

/** A log function: one structured line per call. Never pass secrets. */
export type Log = LogFn;

/** The state store when the config names none: in memory. */
const defaultState: StateConfig = {
  store: "memory",
  url: "",
  timeoutMs: stateDefaults.timeoutMs,
  fail: stateDefaults.fail,
  prefix: stateDefaults.prefix,
  flushMs: stateDefaults.flushMs,
  share: stateDefaults.share,
};

/** Options for {@link startGateway}. */
export interface GatewayOptions {
  config: GatewayConfig;
  /**
   * Logs and metrics. Default: metrics of this gateway's own, and no log output (tests); the
   * program passes one that writes JSON lines to standard error.
   */
  observability?: Observability;
  clock?: Clock;
  /**
   * Time for limit windows, quota periods, the state store's deferred writes and how long a
   * workflow's question waits for its reply. Default `clock`, else the system's.
   */
  limitsClock?: Clock;
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
 * or without a key as `server.metrics` says; spans over OTLP when `tracing` is configured.
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { config } = options;
  const observability = options.observability ?? createObservability({ level: "silent" });
  const { log } = observability;
  // Off without a `tracing` section: the SDK is not even loaded. The process's, as the
  // connection to a collector: a change of `tracing` needs a restart.
  const tracing = await createTracing(config.tracing, log);
  const limitsClock = options.limitsClock ?? options.clock ?? systemClock;
  // The state store, the limiter and their metrics are the process's: a reload keeps the store
  // (state needs a restart) and hands the limiter the new keys.
  const state = config.state ?? defaultState;
  const store = createStateStore(state, {
    clock: limitsClock,
    onHealth(health) {
      if (health.ok) log("info", "state store reachable", { store: state.store });
      else {
        log("warn", `state store unreachable; limits fail ${state.fail}`, {
          store: state.store,
          detail: health.detail,
        });
      }
    },
  });
  let holder: RuntimeHolder | undefined;
  const limitMetrics = createLimitMetrics(observability.metrics.registry, {
    state: () => store.health(),
    channels: () =>
      (holder?.current.channels.all ?? []).flatMap((c) =>
        c.gate ? [{ name: c.name, active: c.gate.active, waiting: c.gate.waiting }] : [],
      ),
  });
  const limiter = createKeyLimiter({
    keys: config.apiKeys,
    store,
    fail: state.fail,
    clock: limitsClock,
    events: limitMetrics,
    // A share saves a round trip; in memory there is none to save.
    share:
      state.store === "redis" && state.share > 0
        ? { maxUnits: state.share, ttlMs: state.flushMs }
        : undefined,
  });
  const pools = createPools();
  const tokens = createTokenCache({
    pools,
    clock: options.clock,
    userAgent: options.userAgent,
    onEvent: observability.onToken,
  });
  observability.observeTokenCache(() => tokens.stats());
  // Runs held by the gateway when a channel's plan refuses is_async: they live in this process,
  // whatever config is in force, and are ended at shutdown, before the pools close (an open
  // stream would hold them up).
  const heldRuns = createHeldRuns({ clock: options.clock ?? systemClock });
  observability.metrics.observeHeldRuns(() => heldRuns.running);
  const warnedFallback = new Set<string>();
  const shared: RuntimeShared = {
    pools,
    tokens,
    observability,
    clock: options.clock,
    userAgent: options.userAgent,
    openAiHeartbeatMs: options.openAiHeartbeatMs,
    limiter,
    onGateRefused: () => limitMetrics.refused("channel"),
    onDiscoveryRefresh: createDiscoveryMetrics(observability.metrics.registry),
    traceDiscovery: (channel) =>
      tracing.background("discovery refresh", { "gateway.channel": channel }),
    store,
    limitsClock,
    heldRuns,
    onAsyncFallback({ channel, reason }) {
      observability.metrics.asyncFallback(channel, reason);
      // Once per channel and process, not per run (the metric counts the runs) nor per reload.
      if (warnedFallback.has(channel)) return;
      warnedFallback.add(channel);
      log(
        "warn",
        "coze refused is_async for this channel's plan: workflow-async runs are held by the gateway over stream_run and are lost if it restarts",
        { channel, cozeCode: 6003 },
      );
    },
  };
  // What a config builds (keys, channels, routes, discovery, services) lives in a runtime,
  // swapped whole on reload; the server mounts the holder's doors once, and each call runs on
  // its runtime.
  const first = buildRuntime(config, shared);
  const runtimes = createRuntimeHolder(first, (old) => release(old, runtimes.live(), pools, log));
  holder = runtimes;
  const metricsAddress = config.server.metrics.listen;
  // The doors on the main port besides Connect: the OpenAI-compatible API, and the pages that
  // need no API key.
  const doors: Door[] = [runtimes.openAiDoor];
  if (metricsAddress === undefined) doors.push(publicDoor("/metrics", runtimes.metricsRoute));
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
    // Bounded by each channel's discovery.start_wait_ms; never rejects.
    await first.discovery.start();
    if (metricsAddress !== undefined) {
      metricsListener = await startMetricsListener({
        ...metricsAddress,
        route: runtimes.metricsRoute,
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
      limiter,
      readyDetails() {
        const health = store.health();
        return { state: health.ok ? health.detail : `${health.detail}; limits fail ${state.fail}` };
      },
      routes: serviceRoutes(runtimes.services),
      authenticate: runtimes.authenticate,
      callerCurrent: runtimes.callerCurrent,
      doors,
      metrics: observability.metrics,
      log,
      requestLog: observability.requestLog,
      tracing,
      trustedProxies: config.server.trustedProxies,
    });
  } catch (err) {
    await first.discovery.close();
    await metricsListener?.close();
    heldRuns.close();
    await pools.destroy();
    limiter.close();
    await store.close();
    await tracing.shutdown();
    throw err;
  }
  // Runtimes a reload is building: their discovery runs before they serve.
  const building = new Set<Runtime>();
  let closed = false;
  const reloadMetrics = createReloadMetrics(observability.metrics.registry);
  reloadMetrics.inForce(config.sha256);
  const reload = createReloader({
    holder: runtimes,
    async build(next, previous) {
      const runtime = buildRuntime(next, shared, previous);
      building.add(runtime);
      try {
        // The new channels' first lists, bounded by their start_wait_ms; calls go on meanwhile
        // on the running config.
        await runtime.discovery.start();
      } finally {
        building.delete(runtime);
      }
      if (closed) {
        await runtime.discovery.close();
        throw new Error("the gateway is closing");
      }
      return runtime;
    },
    applied: (runtime) => limiter.setKeys(runtime.config.apiKeys),
    setTls: (tls) => server.setTls(tls),
    discard: (unused) => release(unused, runtimes.live(), pools, log),
    log,
    metrics: reloadMetrics,
  });
  return {
    url: server.url,
    port: server.port,
    metricsUrl: metricsListener?.url,
    async close() {
      closed = true;
      const discoveries = [...runtimes.live(), ...building].map((r) => r.discovery.close());
      await Promise.all([server.close(), metricsListener?.close(), ...discoveries]);
      heldRuns.close();
      limiter.close();
      // After the server: the last requests' usage is deferred when their responses close.
      await store.close();
      // The spans of the last requests, within the export timeout.
      await Promise.all([pools.close(), tracing.shutdown()]);
    },
    reload,
  };
}

/**
 * Releases what `old` holds that no runtime of `live` uses: its discovery loop, the end-user
 * sessions of its channels that were replaced or removed, and the connection pools no live
 * channel uses (each closes once its requests under way are done).
 */
function release(old: Runtime, live: readonly Runtime[], pools: Pools, log: LogFn): void {
  // Never rejects: a list under way is cancelled, its loop ends.
  void old.discovery.close();
  const kept = new Set(live.flatMap((r) => r.channels.all));
  for (const channel of old.channels.all) if (!kept.has(channel)) channel.release();
  pools.retain([...kept].flatMap((c) => poolsOf(c.config))).catch((err: unknown) => {
    log("warn", "closing the connections of a removed channel failed", {
      error: err instanceof Error ? err.name : typeof err,
    });
  });
}
