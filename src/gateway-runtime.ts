import type { GatewayConfig } from "./config/index.js";
import { apiKeyDigest, interruptDefaults } from "./config/index.js";
import type { Clock } from "./coze/clock.js";
import type { Pools } from "./coze/pools.js";
import type { TokenCache } from "./coze/token-cache.js";
import type { KeyLimiter } from "./limits/index.js";
import type { Observability } from "./observability/index.js";
import { createInterruptReplies, createOpenAiDoor, type OpenAiDoor } from "./openai/index.js";
import { type PublicHttpHandler, requireMetricsKey } from "./server/index.js";
import {
  type AsyncFallbackEvent,
  type Caller,
  type Channels,
  createChannels,
  createDiscovery,
  createModelInfo,
  createModelTable,
  createServiceImpls,
  createTenant,
  type Discovery,
  type DiscoveryEvent,
  type DiscoveryOptions,
  type GateRefusal,
  type HeldRuns,
  type ModelTable,
  type ServiceImpls,
} from "./service/index.js";
import type { StateStore } from "./state/index.js";

/**
 * What lives as long as the process, whatever config is in force: built once by `startGateway`
 * and handed to every {@link buildRuntime}.
 */
export interface RuntimeShared {
  /** The connection pools, one per Coze origin, shared by every config's channels. */
  pools: Pools;
  /** The token cache, keyed per credential: an unchanged credential keeps its tokens. */
  tokens: TokenCache;
  observability: Observability;
  clock: Clock | undefined;
  userAgent: string | undefined;
  openAiHeartbeatMs: number | undefined;
  /** The per-key limiter on the state store: the billing endpoints read a key's usage there. */
  limiter: KeyLimiter;
  /** Called when a channel's gate refuses a call (for metrics). */
  onGateRefused: (channel: string, reason: GateRefusal) => void;
  /** Called after each discovery refresh (for metrics, registered once). */
  onDiscoveryRefresh: (event: DiscoveryEvent) => void;
  /** Starts the trace of a channel's discovery refresh (the process's tracer). */
  traceDiscovery: NonNullable<DiscoveryOptions["trace"]>;
  /** The shared state store: a workflow's question waits there for its reply. */
  store: StateStore;
  /** Time for the state store's entries, such as how long a question waits. */
  limitsClock: Clock;
  /** The runs the gateway holds for plans that refuse `is_async`: the process's, as their ids. */
  heldRuns: HeldRuns;
  /** Called when an async run falls back to a held run (metrics, a warning once per channel). */
  onAsyncFallback: (event: AsyncFallbackEvent) => void;
}

/**
 * Everything the gateway builds from one config: its keys, channels, routes and services. A
 * request runs on one runtime from its start to its end (the one whose keys authenticated it);
 * a reload builds the next one beside it.
 */
export interface Runtime {
  /** The config in force: the file's, with what needs a restart as it runs (`planReload`). */
  readonly config: GatewayConfig;
  readonly channels: Channels;
  /** The configured routes plus what this runtime's discovery finds in its channels' spaces. */
  readonly models: ModelTable;
  /**
   * The background listing of the channels' spaces into `models`: started before the runtime
   * serves (`start`, bounded by each channel's `start_wait_ms`), closed once it is released.
   */
  readonly discovery: Discovery;
  /** The core, behind the Connect door (through the reloadable dispatch) and `openAi`. */
  readonly services: ServiceImpls;
  /** The OpenAI-compatible door on this runtime's services and model routes. */
  readonly openAi: OpenAiDoor;
  /** `/metrics`, behind `server.metrics.key` when set. */
  readonly metricsRoute: PublicHttpHandler;
  /** This runtime's callers, one per configured key. */
  readonly callers: readonly Caller[];
  /** The caller of `key` under this config's keys; `undefined` for an unknown key. */
  authenticate(key: string): Caller | undefined;
}

/**
 * Builds the runtime of `config`. Channels whose config is unchanged from `previous` are kept
 * (with their clients, sessions, cached tokens and gates), and serve what `previous` discovered
 * on them until their first list of this runtime; the rest are made anew on the shared pools
 * and token cache. Its discovery is not started: the caller starts it before the runtime serves.
 *
 * @throws TypeError when a channel cannot be built (a private key that differs from the one in
 *   use under the same client id and key id); nothing is changed then.
 */
export function buildRuntime(
  config: GatewayConfig,
  shared: RuntimeShared,
  previous?: Runtime,
): Runtime {
  const { observability } = shared;
  const channels = createChannels({
    channels: config.channels,
    tokens: shared.tokens,
    pools: shared.pools,
    clock: shared.clock,
    userAgent: shared.userAgent,
    onCall: observability.onUpstream,
    onGateRefused: shared.onGateRefused,
    previous: previous?.channels,
  });
  // The configured routes plus what discovery finds in the channels' spaces, refreshed in the
  // background; requests only read it.
  const models = createModelTable(config);
  const kept = (name: string) => {
    const channel = channels.get(name);
    return channel !== undefined && previous?.channels.get(name) === channel;
  };
  const discovery = createDiscovery({
    channels,
    models,
    clock: shared.clock,
    log: observability.log,
    onRefresh: shared.onDiscoveryRefresh,
    trace: shared.traceDiscovery,
    seed: (name) => (previous !== undefined && kept(name) ? previous.models.discovered(name) : []),
  });
  // One set of service instances behind both the Connect routes and the OpenAI-compatible shim.
  const services = createServiceImpls({
    config,
    channels,
    models,
    onPollStarted: () => observability.metrics.pollStarted(),
    clock: shared.clock,
    heldRuns: shared.heldRuns,
    onAsyncFallback: shared.onAsyncFallback,
  });
  const { limiter } = shared;
  const openAi = createOpenAiDoor({
    services,
    modelInfo: createModelInfo(models),
    bodyLimitBytes: config.server.bodyLimitBytes,
    heartbeatMs: shared.openAiHeartbeatMs,
    log: observability.log,
    onStreamOpened: () => observability.metrics.streamOpened("rest"),
    // Questions live in the store, so one a replaced config asked is answered under the next;
    // interrupts.ttl_seconds applies to replies from the reload on.
    replies: createInterruptReplies({
      store: shared.store,
      ttlMs: (config.interrupts?.ttlSeconds ?? interruptDefaults.ttlSeconds) * 1000,
      now: () => shared.limitsClock.now(),
    }),
    async billing(caller) {
      const usage = await limiter.usage(caller.name);
      return { quotaTokens: usage.quota?.tokens, usedTokens: usage.usedTokens };
    },
  });
  const metricsKey = config.server.metrics.keySha256;
  const metricsRoute =
    metricsKey === undefined
      ? observability.publicRoute
      : requireMetricsKey(observability.publicRoute, metricsKey);
  const { callers, authenticate } = createAuthenticator(config);
  return {
    config,
    channels,
    models,
    discovery,
    services,
    openAi,
    metricsRoute,
    callers,
    authenticate,
  };
}

/**
 * Makes the caller check of a config: the presented key's SHA-256 is looked up among the
 * configured keys' hashes. One {@link Caller} per key, made once: what is derived from it is
 * computed once.
 */
export function createAuthenticator(config: GatewayConfig): {
  callers: readonly Caller[];
  authenticate: (key: string) => Caller | undefined;
} {
  const keys = config.apiKeys;
  const callers: readonly Caller[] = keys.map((k) => ({
    name: k.name,
    models: k.models,
    tenant: createTenant(config.serverSecret, k.sha256, { rawIds: k.rawCozeIds }),
  }));
  // By the hash, not the key: how long a lookup takes depends only on the presented key's
  // SHA-256, which tells a guesser nothing about a configured key (no timing-safe comparison
  // needed), and it takes as long for one key as for ten thousand.
  // `Buffer.from`: a config that went through `structuredClone` holds plain `Uint8Array`s.
  const byHash = new Map(
    keys.map((k, i) => [Buffer.from(k.sha256).toString("base64"), callers[i]]),
  );
  return {
    callers,
    authenticate: (key) => byHash.get(apiKeyDigest(key)),
  };
}
