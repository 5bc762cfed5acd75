import { readDiscovery } from "./channel-discovery.js";
import { readModels } from "./channel-models.js";
import { type ChannelCredentials, readCredentials } from "./credentials.js";
import {
  absent,
  asList,
  asMapping,
  attempt,
  attemptAsync,
  child,
  fail,
  failIfKept,
  flag,
  integer,
  item,
  type LoadContext,
  onlyKnownKeys,
  type Place,
  required,
  root,
  section,
  text,
} from "./fields.js";
import type {
  ChannelConfig,
  DiscoveryConfig,
  ModelRoute,
  PollingConfig,
  SessionsConfig,
  TimeoutsConfig,
} from "./gateway-config.js";
import { readChannelLimits } from "./limits.js";

const channelKeys = [
  "name",
  "base_url",
  "credentials",
  "session_name",
  "sessions",
  "default",
  "token",
  "polling",
  "timeouts",
  "models",
  "limits",
  "discovery",
];

/** Defaults of a channel, as the old channel had them where they were sensible. */
export const channelDefaults = {
  baseUrl: "https://api.coze.cn",
  durationSeconds: 3600,
  refreshMarginSeconds: 300,
  sessions: { perUser: false, maxCached: 1000 },
  polling: { intervalMs: 2000, maxPolls: 150, deadlineMs: 0 },
  timeouts: {
    connectMs: 5000,
    headersMs: 30_000,
    streamIdleMs: 60_000,
    requestMs: 60_000,
    syncRunMs: 100_000,
  },
} as const;

const nameRule =
  "a channel name: 1 to 64 lower-case letters, digits, _ and -, starting with a letter or digit";
const urlRule = "an http(s) URL without query or fragment, e.g. https://api.coze.cn";
const day = 86_400_000;

/** The channels and every explicit model route, in file order. */
export interface Channels {
  channels: ChannelConfig[];
  models: ModelRoute[];
}

/**
 * Reads the `channels` list: at least one channel; names unique; model names unique within a
 * channel, and of one kind across channels (several channels serving one name make a failover
 * route); exactly one `default: true` when there are several (a lone channel is always the
 * default).
 *
 * @throws ConfigError naming the channel (by name once known, else by index) and the field.
 */
const kindName: Record<ModelRoute["kind"], string> = {
  bot: "bot",
  workflow: "workflow",
  workflow_async: "async workflow",
  chatflow: "chatflow",
};

export async function readChannels(ctx: LoadContext, value: unknown): Promise<Channels> {
  const place = child(root, "channels");
  const list = asList(ctx, place, value, "a list of channels, at least one");
  if (list.length === 0) fail(ctx, place, "is empty; expected at least one channel");
  const channels: ChannelConfig[] = [];
  const models: ModelRoute[] = [];
  const modelOwner = new Map<string, ModelRoute>();
  const defaults: string[] = [];
  const mark = ctx.errors.length;
  for (const [i, entry] of list.entries()) {
    // A bad channel is reported and the next one read: every problem of the list at once.
    await attemptAsync(ctx, undefined, async () => {
      const map = asMapping(
        ctx,
        item(place, i),
        entry,
        "a channel mapping with name and credentials",
      );
      const namePlace = child(item(place, i), "name");
      required(ctx, namePlace, map.name, nameRule);
      const name = text(ctx, namePlace, map.name, nameRule) ?? "";
      if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(name)) fail(ctx, namePlace, `must be ${nameRule}`);
      const earlier = channels.findIndex((c) => c.name === name);
      if (earlier >= 0) {
        fail(
          ctx,
          { ...namePlace, channel: name },
          `${name} is already the name of channels[${earlier}]`,
        );
      }
      const at = item(place, name, name);
      onlyKnownKeys(ctx, at, map, channelKeys);
      const isDefault = flag(ctx, child(at, "default"), map.default, false);
      if (isDefault) {
        if (defaults.length > 0) {
          fail(
            ctx,
            child(at, "default"),
            `channels[${defaults[0]}] is already the default; only one channel may be`,
          );
        }
        defaults.push(name);
      }
      const channel = await readChannel(ctx, at, name, map, list.length === 1 || isDefault);
      const routes = readModels(ctx, child(at, "models"), map.models, channel);
      const here = new Set<string>();
      for (const route of routes) {
        const where = item(child(at, "models"), route.name);
        if (here.has(route.name)) fail(ctx, where, "is listed twice in this channel");
        here.add(route.name);
        // Several channels may serve one name (failover); they must run the same kind of thing.
        const earlier = modelOwner.get(route.name);
        if (earlier !== undefined && earlier.kind !== route.kind) {
          fail(
            ctx,
            where,
            `is a ${kindName[route.kind]} here but a ${kindName[earlier.kind]} on channels[${earlier.channel}]; a name served by several channels must run the same kind`,
          );
        }
        if (earlier === undefined) modelOwner.set(route.name, route);
      }
      channels.push(channel);
      models.push(...routes);
    });
  }
  // Which one is the default cannot be told while a channel could not be read.
  failIfKept(ctx, mark);
  if (list.length > 1 && defaults.length === 0) {
    fail(
      ctx,
      place,
      `has ${list.length} channels but none has default: true; mark the one that serves workflow:, workflow-async:, chatflow: and bot: names`,
    );
  }
  return { channels, models };
}

async function readChannel(
  ctx: LoadContext,
  at: Place,
  name: string,
  map: Record<string, unknown>,
  isDefault: boolean,
): Promise<ChannelConfig> {
  // Each part is read even when one before it failed: every problem of the channel at once.
  const mark = ctx.errors.length;
  const baseUrl = attempt(ctx, channelDefaults.baseUrl, () =>
    readBaseUrl(ctx, child(at, "base_url"), map.base_url),
  );
  const read = await attemptAsync(ctx, undefined, () =>
    readCredentials(ctx, child(at, "credentials"), map.credentials),
  );
  if (read?.kind === "pat") {
    // A personal access token is sent as it is (coze-api.md §11): no token to request, and no
    // JWT to carry a session_name (§12.2).
    const jwtOnly: Record<string, string> = {
      token:
        "a personal access token is sent as it is: there is no access token to request or refresh",
      session_name: "a personal access token carries no session_name: only OAuth JWT tokens do",
      sessions: "a personal access token carries no session_name: only OAuth JWT tokens do",
    };
    for (const [key, why] of Object.entries(jwtOnly)) {
      if (!absent(map[key])) {
        attempt(ctx, undefined, () =>
          fail(ctx, child(at, key), `applies to OAuth JWT channels only; ${why}`),
        );
      }
    }
  }
  const sessionName = attempt(ctx, undefined, () =>
    text(ctx, child(at, "session_name"), map.session_name, "a string"),
  );
  const sessions = attempt(ctx, channelDefaults.sessions, () =>
    readSessions(ctx, child(at, "sessions"), map.sessions),
  );
  const { durationSeconds, marginSeconds } = attempt(
    ctx,
    { durationSeconds: 0, marginSeconds: 0 },
    () => readToken(ctx, child(at, "token"), map.token),
  );
  const polling = attempt(ctx, { ...channelDefaults.polling, deadlineMs: undefined }, () =>
    readPolling(ctx, child(at, "polling"), map.polling),
  );
  const timeouts = attempt(ctx, { ...channelDefaults.timeouts }, () =>
    readTimeouts(ctx, child(at, "timeouts"), map.timeouts),
  );
  const limits = attempt(ctx, undefined, () =>
    readChannelLimits(ctx, child(at, "limits"), map.limits),
  );
  // Discovery needs the credentials' space_id: unread credentials are reported on their own.
  const discovery =
    read === undefined
      ? undefined
      : attempt(ctx, undefined, () =>
          readDiscovery(ctx, child(at, "discovery"), map.discovery, read.spaceId),
        );
  failIfKept(ctx, mark);
  // failIfKept threw when the credentials could not be read.
  const settings = read as ChannelCredentials;

  const credential: ChannelConfig["credential"] =
    settings.kind === "pat"
      ? { kind: "pat", token: settings.token }
      : {
          baseUrl,
          clientId: settings.clientId,
          publicKeyId: settings.publicKeyId,
          privateKey: settings.privateKey,
          durationSeconds,
          ...(sessionName === undefined || sessionName === "" ? {} : { sessionName }),
          ...(settings.accountId === undefined ? {} : { accountId: settings.accountId }),
          ...(settings.enterpriseId === undefined ? {} : { enterpriseId: settings.enterpriseId }),
        };
  return {
    name,
    baseUrl,
    credential,
    ...(settings.kind === "pat" ? {} : { sessions }),
    ...(settings.spaceId === undefined ? {} : { spaceId: settings.spaceId }),
    ...(settings.defaultBotId === undefined ? {} : { defaultBotId: settings.defaultBotId }),
    isDefault,
    refreshMarginMs: marginSeconds * 1000,
    polling,
    timeouts,
    limits,
    // failIfKept threw when discovery could not be read.
    discovery: discovery as DiscoveryConfig,
  };
}

/** The `token` section: the token's lifetime and how long before expiry it is refreshed. */
function readToken(
  ctx: LoadContext,
  tokenPlace: Place,
  value: unknown,
): { durationSeconds: number; marginSeconds: number } {
  const token = section(ctx, tokenPlace, value, ["duration_seconds", "refresh_margin_seconds"]);
  const durationSeconds = integer(
    ctx,
    child(tokenPlace, "duration_seconds"),
    token.duration_seconds,
    {
      min: 60,
      max: 86_399,
      fallback: channelDefaults.durationSeconds,
    },
  );
  const marginPlace = child(tokenPlace, "refresh_margin_seconds");
  const halfLife = Math.floor(durationSeconds / 2);
  const marginSeconds = integer(ctx, marginPlace, token.refresh_margin_seconds, {
    min: 0,
    max: 43_199,
    // The default never exceeds half a short token's life.
    fallback: Math.min(channelDefaults.refreshMarginSeconds, halfLife),
  });
  if (marginSeconds > halfLife) {
    // The token cache refreshes at half-life at the latest (token-cache.ts): a larger margin
    // would silently not be the one in force (issue #13).
    fail(
      ctx,
      marginPlace,
      `must be at most half of token.duration_seconds (${durationSeconds}), that is ${halfLife}`,
    );
  }
  return { durationSeconds, marginSeconds };
}

function readSessions(ctx: LoadContext, place: Place, value: unknown): SessionsConfig {
  const map = section(ctx, place, value, ["per_user", "max_cached"]);
  const d = channelDefaults.sessions;
  return {
    perUser: flag(ctx, child(place, "per_user"), map.per_user, d.perUser),
    maxCached: integer(ctx, child(place, "max_cached"), map.max_cached, {
      min: 1,
      max: 100_000,
      fallback: d.maxCached,
    }),
  };
}

function readBaseUrl(ctx: LoadContext, place: Place, value: unknown): string {
  const raw = text(ctx, place, value, urlRule);
  if (raw === undefined) return channelDefaults.baseUrl;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    fail(ctx, place, `must be ${urlRule}`);
  }
  if (
    (url.protocol !== "http:" && url.protocol !== "https:") ||
    raw.includes("?") ||
    raw.includes("#")
  ) {
    fail(ctx, place, `must be ${urlRule}`);
  }
  if (url.username !== "" || url.password !== "") {
    fail(
      ctx,
      place,
      "must not hold a user name or password; the channel authenticates with its credentials",
    );
  }
  const loopback = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/.test(url.hostname);
  if (url.protocol === "http:" && !loopback) {
    ctx.warnings.push(
      `${ctx.file}: ${place.path}: uses plain http to ${url.host}; access tokens would travel unencrypted`,
    );
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

function readPolling(ctx: LoadContext, place: Place, value: unknown): PollingConfig {
  const map = section(ctx, place, value, ["interval_ms", "max_polls", "deadline_ms"]);
  const d = channelDefaults.polling;
  const deadlineMs = integer(ctx, child(place, "deadline_ms"), map.deadline_ms, {
    min: 0,
    max: day,
    fallback: d.deadlineMs,
  });
  return {
    intervalMs: integer(ctx, child(place, "interval_ms"), map.interval_ms, {
      min: 100,
      max: 600_000,
      fallback: d.intervalMs,
    }),
    maxPolls: integer(ctx, child(place, "max_polls"), map.max_polls, {
      min: 1,
      max: 100_000,
      fallback: d.maxPolls,
    }),
    deadlineMs: deadlineMs === 0 ? undefined : deadlineMs,
  };
}

function readTimeouts(ctx: LoadContext, place: Place, value: unknown): TimeoutsConfig {
  const keys = {
    connect_ms: "connectMs",
    headers_ms: "headersMs",
    stream_idle_ms: "streamIdleMs",
    request_ms: "requestMs",
    sync_run_ms: "syncRunMs",
  } as const;
  const map = section(ctx, place, value, Object.keys(keys));
  const result = { ...channelDefaults.timeouts } as TimeoutsConfig;
  for (const [key, field] of Object.entries(keys)) {
    result[field] = integer(ctx, child(place, key), map[key], {
      min: 1,
      max: day,
      fallback: channelDefaults.timeouts[field],
    });
  }
  return result;
}
