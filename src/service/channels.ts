import type { ChannelConfig } from "../config/index.js";
import { type CozeClient, createCozeClient } from "../coze/client.js";
import { type Clock, systemClock } from "../coze/clock.js";
import type { CallInfo } from "../coze/http.js";
import type { Pools } from "../coze/pools.js";
import type { TokenCache } from "../coze/token-cache.js";
import { type ChannelGate, createChannelGate, type GateRefusal } from "./channel-gate.js";

/** A configured channel with its live Coze client. */
export interface Channel {
  readonly name: string;
  readonly config: ChannelConfig;
  /** The client on the channel's session-less token (in-process calls, checks). */
  readonly client: CozeClient;
  /**
   * The client whose token carries JWT `session_name` = `sessionName` (coze-api.md §12.2), made
   * on first use and kept: one cached token per session, with the token cache's single-flight
   * and refresh rules. `undefined` gives {@link client}.
   */
  clientFor(sessionName: string | undefined): CozeClient;
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
  /** Called when a channel's gate refuses a call (for metrics). */
  onGateRefused?: (channel: string, reason: GateRefusal) => void;
}

/**
 * Builds one Coze client per channel on a shared token cache and shared connection pools.
 * Throws `TypeError` for an empty channel list or an invalid credential (config validation
 * normally catches both first).
 */
export function createChannels(options: ChannelsOptions): Channels {
  if (options.channels.length === 0) throw new TypeError("at least one channel is required");
  const all = options.channels.map((config): Channel => {
    const clientOf = (sessionName: string | undefined) =>
      createCozeClient({
        baseUrl: config.baseUrl,
        tokens: options.tokens.source({
          ...config.credential,
          refreshMarginMs: config.refreshMarginMs,
          // The channel's own session_name, if any, stays as a prefix of the key's session.
          ...(sessionName === undefined
            ? {}
            : {
                sessionName:
                  config.credential.sessionName === undefined
                    ? sessionName
                    : `${config.credential.sessionName}:${sessionName}`,
              }),
        }),
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
    const client = clientOf(undefined);
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
    // One per API key at most (sessions come from configured keys), so the map stays small.
    const sessions = new Map<string, CozeClient>();
    return {
      name: config.name,
      config,
      client,
      gate,
      clientFor(sessionName) {
        if (sessionName === undefined) return client;
        let found = sessions.get(sessionName);
        if (found === undefined) {
          found = clientOf(sessionName);
          sessions.set(sessionName, found);
        }
        return found;
      },
    };
  });
  const byName = new Map(all.map((c) => [c.name, c]));
  const fallback = all.find((c) => c.config.isDefault) ?? all[0];
  if (fallback === undefined) throw new TypeError("at least one channel is required");
  return { get: (name) => byName.get(name), default: fallback, all };
}
