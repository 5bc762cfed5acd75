import { timingSafeEqual } from "node:crypto";
import type { GatewayConfig } from "./config/index.js";
import { hashApiKey } from "./config/index.js";
import type { Clock } from "./coze/clock.js";
import { createPools } from "./coze/pools.js";
import { createTokenCache } from "./coze/token-cache.js";
import {
  createObservability,
  createTracing,
  type LogFn,
  type Observability,
} from "./observability/index.js";
import { createOpenAiDoor } from "./openai/index.js";
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
  createModelInfo,
  createServiceImpls,
  createTenant,
  serviceRoutes,
} from "./service/index.js";

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
  const pools = createPools();
  const tokens = createTokenCache({
    pools,
    clock: options.clock,
    userAgent: options.userAgent,
    onEvent: observability.onToken,
  });
  observability.observeTokenCache(() => tokens.stats());
  const channels = createChannels({
    channels: config.channels,
    tokens,
    pools,
    clock: options.clock,
    userAgent: options.userAgent,
    onCall: observability.onUpstream,
  });
  // One set of service instances behind both the Connect routes and the OpenAI-compatible shim.
  const services = createServiceImpls({
    config,
    channels,
    onPollStarted: () => observability.metrics.pollStarted(),
  });
  const openAi = createOpenAiDoor({
    services,
    modelInfo: createModelInfo(config),
    bodyLimitBytes: config.server.bodyLimitBytes,
    heartbeatMs: options.openAiHeartbeatMs,
    log,
    onStreamOpened: () => observability.metrics.streamOpened("rest"),
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
    await metricsListener?.close();
    await pools.destroy();
    await tracing.shutdown();
    throw err;
  }
  return {
    url: server.url,
    port: server.port,
    metricsUrl: metricsListener?.url,
    async close() {
      await Promise.all([server.close(), metricsListener?.close()]);
      // The spans of the last requests, within the export timeout.
      await Promise.all([pools.close(), tracing.shutdown()]);
    },
  };
}
