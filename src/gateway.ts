import { timingSafeEqual } from "node:crypto";
import type { GatewayConfig, StateConfig } from "./config/index.js";
import { hashApiKey, interruptDefaults, stateDefaults } from "./config/index.js";
import { type Clock, systemClock } from "./coze/clock.js";
import { createPools } from "./coze/pools.js";
import { createTokenCache } from "./coze/token-cache.js";
import { createKeyLimiter, createLimitMetrics } from "./limits/index.js";
import { createDiscoveryMetrics } from "./observability/discovery-metrics.js";
import {
  createObservability,
  createTracing,
  type LogFn,
  type Observability,
} from "./observability/index.js";
import { createInterruptReplies, createOpenAiDoor } from "./openai/index.js";
import { createPlaygroundHandler } from "./playground/playground-handler.js";
import {
  type Door,
  type GatewayServer,
  type MetricsListener,
  publicDoor,
  requireMetricsKey,
  startGatewayServer,
  startMetricsListener,
} from "./server/index.js";
import {
  type Caller,
  createChannels,
  createDiscovery,
  createHeldRuns,
  createModelInfo,
  createModelTable,
  createServiceImpls,
  createTenant,
  serviceRoutes,
} from "./service/index.js";
import { createStateStore } from "./state/index.js";

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
}

/**
 * Makes the caller check: the presented key is hashed and compared in constant time with every
 * configured key hash (all of them, so the time does not depend on which one matches).
 */
export function createAuthenticator(config: GatewayConfig): (key: string) => Caller | undefined {
  const keys = config.apiKeys;
  // One Caller per key for the gateway's life: what is derived from it is computed once.
  const callers: readonly Caller[] = keys.map((k) => ({
    name: k.name,
    models: k.models,
    tenant: createTenant(config.serverSecret, k.sha256, { rawIds: k.rawCozeIds }),
  }));
  return (key) => {
    const hash = hashApiKey(key);
    let found: Caller | undefined;
    keys.forEach((k, i) => {
      if (timingSafeEqual(hash, k.sha256) && found === undefined) found = callers[i];
    });
    return found;
  };
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
  const { listen: metricsAddress, keySha256: metricsKey } = config.server.metrics;
  const metricsRoute =
    metricsKey === undefined
      ? observability.publicRoute
      : requireMetricsKey(observability.publicRoute, metricsKey);
  // The doors on the main port besides Connect: the OpenAI-compatible API (below), and the
  // pages that need no API key.
  const doors: Door[] = [];
  if (metricsAddress === undefined) doors.push(publicDoor("/metrics", metricsRoute));
  if (config.server.playground) {
    doors.push(
      publicDoor(
        "/playground",
        createPlaygroundHandler({ suggestedModels: options.playgroundModels, log }),
      ),
    );
  }
  // Off without a `tracing` section: the SDK is not even loaded.
  const tracing = await createTracing(config.tracing, log);
  const limitsClock = options.limitsClock ?? options.clock ?? systemClock;
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
  let channels: ReturnType<typeof createChannels> | undefined;
  const limitMetrics = createLimitMetrics(observability.metrics.registry, {
    state: () => store.health(),
    channels: () =>
      (channels?.all ?? []).flatMap((c) =>
        c.gate ? [{ name: c.name, active: c.gate.active, waiting: c.gate.waiting }] : [],
      ),
  });
  const limiter = createKeyLimiter({
    keys: config.apiKeys,
    store,
    fail: state.fail,
    clock: limitsClock,
    events: limitMetrics,
  });
  const pools = createPools();
  const tokens = createTokenCache({
    pools,
    clock: options.clock,
    userAgent: options.userAgent,
    onEvent: observability.onToken,
  });
  observability.observeTokenCache(() => tokens.stats());
  channels = createChannels({
    channels: config.channels,
    tokens,
    pools,
    clock: options.clock,
    userAgent: options.userAgent,
    onCall: observability.onUpstream,
    onGateRefused: () => limitMetrics.refused("channel"),
  });
  // The configured routes plus what discovery finds in the channels' spaces, refreshed in the
  // background; requests only read it.
  const models = createModelTable(config);
  const discovery = createDiscovery({
    channels,
    models,
    clock: options.clock,
    log,
    onRefresh: createDiscoveryMetrics(observability.metrics.registry),
    trace: (channel) => tracing.background("discovery refresh", { "gateway.channel": channel }),
  });
  // Runs held by the gateway when a channel's plan refuses is_async: they live in this process
  // and are ended at shutdown, before the pools close (an open stream would hold them up).
  const heldRuns = createHeldRuns({ clock: options.clock ?? systemClock });
  observability.metrics.observeHeldRuns(() => heldRuns.running);
  // One set of service instances behind both the Connect routes and the OpenAI-compatible shim.
  const services = createServiceImpls({
    config,
    channels,
    models,
    onPollStarted: () => observability.metrics.pollStarted(),
    clock: options.clock,
    heldRuns,
    onAsyncFallback({ channel, reason, first }) {
      observability.metrics.asyncFallback(channel, reason);
      // Once per channel, not per run: the metric counts the runs.
      if (first) {
        log(
          "warn",
          "coze refused is_async for this channel's plan: workflow-async runs are held by the gateway over stream_run and are lost if it restarts",
          {
            channel,
            cozeCode: 6003,
          },
        );
      }
    },
  });
  const openAi = createOpenAiDoor({
    services,
    modelInfo: createModelInfo(models),
    bodyLimitBytes: config.server.bodyLimitBytes,
    heartbeatMs: options.openAiHeartbeatMs,
    log,
    onStreamOpened: () => observability.metrics.streamOpened("rest"),
    replies: createInterruptReplies({
      store,
      ttlMs: (config.interrupts?.ttlSeconds ?? interruptDefaults.ttlSeconds) * 1000,
      now: () => limitsClock.now(),
    }),
    async billing(caller) {
      const usage = await limiter.usage(caller.name);
      return { quotaTokens: usage.quota?.tokens, usedTokens: usage.usedTokens };
    },
  });
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
    await discovery.start();
    if (metricsAddress !== undefined) {
      metricsListener = await startMetricsListener({
        ...metricsAddress,
        route: metricsRoute,
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
      routes: serviceRoutes(services),
      authenticate: createAuthenticator(config),
      doors: [openAi, ...doors],
      metrics: observability.metrics,
      log,
      requestLog: observability.requestLog,
      tracing,
      trustedProxies: config.server.trustedProxies,
    });
  } catch (err) {
    await discovery.close();
    await metricsListener?.close();
    heldRuns.close();
    await pools.destroy();
    limiter.close();
    await store.close();
    await tracing.shutdown();
    throw err;
  }
  return {
    url: server.url,
    port: server.port,
    metricsUrl: metricsListener?.url,
    async close() {
      await Promise.all([server.close(), metricsListener?.close(), discovery.close()]);
      heldRuns.close();
      limiter.close();
      // After the server: the last requests' usage is deferred when their responses close.
      await store.close();
      // The spans of the last requests, within the export timeout.
      await Promise.all([pools.close(), tracing.shutdown()]);
    },
  };
}
