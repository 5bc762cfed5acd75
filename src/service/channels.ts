import { isDeepStrictEqual } from "node:util";
import type { ChannelConfig } from "../config/index.js";
import { type CozeClient, createCozeClient } from "../coze/client.js";
import { type Clock, systemClock } from "../coze/clock.js";
import type { AccessTokens, CallInfo } from "../coze/http.js";
import { createPatTokens } from "../coze/pat-tokens.js";
import type { Pools } from "../coze/pools.js";
import type { CozeCredential, TokenCache } from "../coze/token-cache.js";
import { type ChannelGate, createChannelGate, type GateRefusal } from "./channel-gate.js";
import type { Tenant } from "./tenant.js";

/** A configured channel with its live Coze client. */
export interface Channel {
  readonly name: string;
  readonly config: ChannelConfig;
  /** The client on the channel's session-less token (in-process calls, checks). */
  readonly client: CozeClient;
  /**
   * The client whose token carries JWT `session_name` = `sessionName` (coze-api.md §12.2), made
   * on first use and kept: one cached token per session, with the token cache's single-flight
   * and refresh rules. `undefined` gives {@link client}. A personal access token carries no
   * session: its channel always gives {@link client}.
   */
  clientFor(sessionName: string | undefined): CozeClient;
  /**
   * The client for a turn of `tenant`'s end user `user` (`""`: the key's default user). With the
   * channel's `sessions.per_user` on, its tokens carry `session_name` = `tenant.userId(user)`, so
   * Coze keeps each end user's conversations and variables apart (§12.2), held in the channel's
   * bounded session cache; otherwise it is `clientFor(tenant.sessionName)`.
   */
  clientForUser(tenant: Pick<Tenant, "sessionName" | "userId">, user: string): CozeClient;
  /**
   * Forgets the channel's end-user sessions and their tokens (a reload dropped or replaced the
   * channel, and its last call has ended). The channel is not used after.
   */
  release(): void;
  /** The cap on this channel's calls to Coze (`limits.max_concurrent`); `undefined` for none. */
  readonly gate: ChannelGate | undefined;
}

/** The channels by name, plus the one that receives dynamic model names. */
export interface Channels {
  get(name: string): Channel | undefined;
  /** The default channel (the one marked default, or the only one). */
  readonly default: Channel;
  readonly all: readonly Channel[];
}

/** Options for {@link createChannels}. */
export interface ChannelsOptions {
  channels: readonly ChannelConfig[];
  /** The token cache all channels share; it keys tokens per credential. */
  tokens: TokenCache;
  pools: Pools;
  clock?: Clock;
  userAgent?: string;
  onCall?: (channel: string, info: CallInfo) => void;
  /**
   * The channels of the config running so far (a reload): a channel whose config is the same
   * ({@link sameChannelConfig}) is kept as it is, with its clients, sessions and cached tokens,
   * so a reload costs it no token request.
   */
  previous?: Channels;
  /** Called when a channel's gate refuses a call (for metrics). */
  onGateRefused?: (channel: string, reason: GateRefusal) => void;
}

/**
 * Builds one Coze client per channel on a shared token cache and shared connection pools, or
 * keeps the previous one of an unchanged channel. Throws `TypeError` for an empty channel list
 * or an invalid credential (config validation normally catches both first), or for a private key
 * that differs from the one in use under the same client id and key id.
 */
export function createChannels(options: ChannelsOptions): Channels {
  if (options.channels.length === 0) throw new TypeError("at least one channel is required");
  const all = options.channels.map((config) => {
    const kept = options.previous?.get(config.name);
    return kept !== undefined && sameChannelConfig(kept.config, config)
      ? kept
      : createChannel(config, options);
  });
  const byName = new Map(all.map((c) => [c.name, c]));
  const fallback = all.find((c) => c.config.isDefault) ?? all[0];
  if (fallback === undefined) throw new TypeError("at least one channel is required");
  return { get: (name) => byName.get(name), default: fallback, all };
}

/**
 * Whether two channel configs are the same: every setting equal, and the same private key (a
 * parsed key is compared by its key material, not as an object).
 */
export function sameChannelConfig(a: ChannelConfig, b: ChannelConfig): boolean {
  const { credential: ca, ...restA } = a;
  const { credential: cb, ...restB } = b;
  if (!isDeepStrictEqual(restA, restB)) return false;
  if ("kind" in ca || "kind" in cb) return isDeepStrictEqual(ca, cb);
  const { privateKey: ka, ...fieldsA } = ca;
  const { privateKey: kb, ...fieldsB } = cb;
  return isDeepStrictEqual(fieldsA, fieldsB) && ka.equals(kb);
}

/** A connection pool as `Pools.get` names it: an origin, and a connect timeout of its own. */
export interface PoolRef {
  url: string;
  connectMs?: number;
}

/**
 * The connection pools a channel's calls use: its API calls' (its base URL and connect
 * timeout) and, for an OAuth JWT app, its token requests' (the base URL with the pools' default
 * timeout, as the token cache asks for it).
 */
export function poolsOf(config: ChannelConfig): PoolRef[] {
  const api = { url: config.baseUrl, connectMs: config.timeouts.connectMs };
  return "kind" in config.credential ? [api] : [api, { url: config.credential.baseUrl }];
}

function createChannel(config: ChannelConfig, options: ChannelsOptions): Channel {
  const clientOf = (tokens: AccessTokens) =>
    createCozeClient({
      baseUrl: config.baseUrl,
      tokens,
      pools: options.pools,
      clock: options.clock,
      userAgent: options.userAgent,
      requestTimeoutMs: config.timeouts.requestMs,
      connectTimeoutMs: config.timeouts.connectMs,
      headersTimeoutMs: config.timeouts.headersMs,
      streamIdleTimeoutMs: config.timeouts.streamIdleMs,
      syncRunTimeoutMs: config.timeouts.syncRunMs,
      workflowPolling: {
        intervalMs: config.polling.intervalMs,
        maxPolls: config.polling.maxPolls,
        deadlineMs: config.polling.deadlineMs,
      },
      onCall: options.onCall && ((info) => options.onCall?.(config.name, info)),
    });
  const maxConcurrent = config.limits?.maxConcurrent;
  const gate =
    config.limits === undefined || maxConcurrent === undefined
      ? undefined
      : createChannelGate(
          config.name,
          { ...config.limits, maxConcurrent },
          options.clock ?? systemClock,
          options.onGateRefused && ((reason) => options.onGateRefused?.(config.name, reason)),
        );
  const { credential } = config;
  if (credential.kind === "pat") {
    // One token for every key and end user: Coze sees them all as the token's account, and
    // only the gateway's sealed ids keep the keys apart (docs/security.md).
    const client = clientOf(
      createPatTokens({ token: credential.token, label: `channel ${config.name}` }),
    );
    return {
      name: config.name,
      config,
      client,
      gate,
      clientFor: () => client,
      clientForUser: () => client,
      release() {},
    };
  }
  const app: CozeCredential = { ...credential, refreshMarginMs: config.refreshMarginMs };
  // The channel's own session_name, if any, stays as a prefix of every session's.
  const named = (session: string) =>
    credential.sessionName === undefined ? session : `${credential.sessionName}:${session}`;
  const client = clientOf(options.tokens.source(app));
  // One per API key at most (sessions come from configured keys), so the map stays small.
  const keySessions = new Map<string, CozeClient>();
  const clientFor = (sessionName: string | undefined) => {
    if (sessionName === undefined) return client;
    let found = keySessions.get(sessionName);
    if (found === undefined) {
      found = clientOf(options.tokens.source({ ...app, sessionName: named(sessionName) }));
      keySessions.set(sessionName, found);
    }
    return found;
  };
  const perUser = config.sessions?.perUser === true ? config.sessions : undefined;
  if (perUser === undefined) {
    return {
      name: config.name,
      config,
      client,
      gate,
      clientFor,
      clientForUser: (tenant) => clientFor(tenant.sessionName),
      release: () => keySessions.clear(),
    };
  }
  // One client per end-user session, kept and dropped with its token in the channel's bounded
  // session cache, grouped by key so a key that names end users without end drops its own.
  const userClients = options.tokens.sessions(app, {
    maxSessions: perUser.maxCached,
    attach: clientOf,
  });
  return {
    name: config.name,
    config,
    client,
    gate,
    clientFor,
    clientForUser(tenant, user) {
      // The in-process tenant has no session: its calls use the session-less token.
      if (tenant.sessionName === undefined) return client;
      return userClients.get(named(tenant.userId(user)), tenant.sessionName);
    },
    release() {
      keySessions.clear();
      userClients.release();
    },
  };
}
