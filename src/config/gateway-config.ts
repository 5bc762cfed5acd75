import type { PatCredential } from "../coze/pat-tokens.js";
import type { CozeCredential } from "../coze/token-cache.js";
import type { TracingConfig } from "./tracing.js";

/** The process environment, or a stand-in for it. Only `COZE_GATEWAY_*` and `env:` names are read. */
export type ConfigEnv = Readonly<Record<string, string | undefined>>;

/** The listening side of the gateway. */
export interface ServerConfig {
  /** Interface to listen on. Default `127.0.0.1`; env `COZE_GATEWAY_HOST` overrides. */
  host: string;
  /** TCP port, 0 to 65535 (0 picks a free port). Default 8080; env `COZE_GATEWAY_PORT`. */
  port: number;
  /**
   * Certificate chain and private key, both PEM text (already read from their files). When set
   * the server speaks TLS with ALPN; when `undefined`, cleartext HTTP/1.1 and h2c. Secret: `key`.
   */
  tls: { cert: string; key: string } | undefined;
  /**
   * Browser origins allowed by CORS: exact `scheme://host[:port]` origins, or `*` for any.
   * Default `[]` (no cross-origin access); env `COZE_GATEWAY_CORS_ORIGINS` (comma-separated).
   */
  corsOrigins: string[];
  /** Largest request body accepted, in bytes. Default 10 485 760 (10 MiB). */
  bodyLimitBytes: number;
  /** How long a graceful shutdown waits for requests under way, in ms. Default 10 000. */
  shutdownGraceMs: number;
  /**
   * Serve the web playground at `GET /playground` (no key needed for the page itself; its calls
   * use the key typed into it). Default `false`.
   */
  playground: boolean;
  /**
   * Longest a connection may stay open with no request in flight, in ms: an HTTP/2 session
   * without an open stream gets GOAWAY, an idle HTTP/1.1 keep-alive connection is closed.
   * Default 30 000.
   */
  idleTimeoutMs: number;
  /**
   * Longest wait for a request's headers, in ms (HTTP/1.1); it also bounds a new connection's
   * silence before its first bytes and its TLS handshake. At most `requestTimeoutMs`.
   * Default 10 000.
   */
  headersTimeoutMs: number;
  /**
   * Longest wait for a whole request, headers and body, in ms (HTTP/1.1 and HTTP/2). The
   * response, such as a stream, may last longer. Default 30 000.
   */
  requestTimeoutMs: number;
  /** Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). Default 100. */
  maxConcurrentStreams: number;
  /**
   * Requests, streams included, one API key may have in flight at once over all connections;
   * the next gets RESOURCE_EXHAUSTED (HTTP 429 under `/v1/`). Default 256.
   */
  maxStreamsPerKey: number;
  /** Where `/metrics` is served and whether it needs a key. */
  metrics: MetricsConfig;
  /**
   * Proxies whose `X-Forwarded-For` is believed, as CIDR blocks (`10.0.0.0/8`, `::1/128`; a bare
   * address is one host). The client address in log lines is the peer's, or, when the peer is
   * one of these, the right-most `X-Forwarded-For` address that is not. Default `[]`: the header
   * is ignored.
   */
  trustedProxies: string[];
}

/** How `GET /metrics` is served. */
export interface MetricsConfig {
  /**
   * An address of its own (plain HTTP/1.1) that serves `/metrics` and nothing else, instead of
   * the main port; `undefined` serves it on the main port. Port 0 picks a free one.
   */
  listen: { host: string; port: number } | undefined;
  /**
   * SHA-256 of the key a scrape must send as `Authorization: Bearer <key>`; `undefined` needs
   * none. The key itself is never kept.
   */
  keySha256: Buffer | undefined;
}

/** One caller API key. The key itself is never kept, only its SHA-256. */
export interface ApiKeyConfig {
  /** The caller's name, unique; safe to log. */
  name: string;
  /** SHA-256 of the key, 32 bytes (`hashApiKey`); the key itself is never kept. */
  sha256: Buffer;
  /**
   * The models this key may use: exact names, or prefixes ending in `*` (`workflow:*`).
   * `undefined` allows every model. See `modelAllowed`.
   */
  models: string[] | undefined;
  /**
   * Whether the key may name raw Coze ids (conversations, chats, runs, interrupts made outside
   * the gateway, e.g. in Coze's own UI) besides the ids the gateway handed it. Default `false`.
   */
  rawCozeIds: boolean;
  /** The key's limits and quota (`limits`); `undefined` for none. */
  limits?: KeyLimitsConfig | undefined;
}

/**
 * One key's limits, each `undefined` when not set. Rates slide (a key with 60 requests per
 * minute gets one back every second); the quota is a budget per UTC day or month.
 */
export interface KeyLimitsConfig {
  /** Requests per minute, every request of the key counted. */
  requestsPerMinute: number | undefined;
  /** Coze tokens per minute, counted from Coze's usage after each call. */
  tokensPerMinute: number | undefined;
  /** Coze tokens per day (a sliding 24 hours), counted like `tokensPerMinute`. */
  tokensPerDay: number | undefined;
  /** Streams (requests in flight) open at once over every replica. */
  maxStreams: number | undefined;
  /** Coze tokens per UTC day or month; refused once used up, until the period ends. */
  quota: { tokens: number; per: "day" | "month" } | undefined;
}

/** How many calls one channel makes to Coze at once (`channels[].limits`). */
export interface ChannelLimitsConfig {
  /** Calls to Coze in flight at once on this replica; `undefined` for no cap. */
  maxConcurrent: number | undefined;
  /** Calls that may wait for a free slot; past that they are refused at once. Default 100. */
  queue: number;
  /** Longest wait for a slot, in ms, when the call's own deadline is not sooner. Default 30 000. */
  queueTimeoutMs: number;
}

/** Where the gateway keeps what outlives one request (`state`). */
export interface StateConfig {
  /** `memory` (one replica, the default) or `redis` (replicas share one Redis server). */
  store: "memory" | "redis";
  /** The Redis URL, `redis://` or `rediss://`; `""` for `memory`. A secret: it may hold a password. */
  url: string;
  /** Longest wait for Redis on a request's path, in ms. Default 50. */
  timeoutMs: number;
  /** What limits do while Redis is unreachable: let calls through (`open`) or refuse them. */
  fail: "open" | "closed";
  /** Put in front of every Redis key. Default `coze-gateway:`. */
  prefix: string;
  /** Longest time a call's token count waits to ride along with another round trip, in ms. */
  flushMs: number;
  /**
   * On Redis, the most calls of one key a replica admits from a share taken ahead (each share
   * lasts `flushMs`); 0: every call of a limited key asks Redis. Default 64.
   */
  share: number;
}

/**
 * How a chat front-end's reply answers a workflow's question (`interrupts`): the pending
 * interrupt is remembered in the state store, bound to the key and the conversation's history.
 */
export interface InterruptsConfig {
  /**
   * How long a question (or a chatflow's conversation) waits for the reply that resumes it, in
   * seconds; 0 turns replies off (`event_id` still resumes). Default 86 400 (a day).
   */
  ttlSeconds: number;
}

/** Async workflow polling of one channel. */
export interface PollingConfig {
  /** Time between two polls of a run, in ms. Default 2 000 (as the old channel). */
  intervalMs: number;
  /** Most polls before giving up. Default 150 (as the old channel). */
  maxPolls: number;
  /** Overall deadline of one run's polling, in ms; `undefined` for none (the default). */
  deadlineMs: number | undefined;
}

/** Upstream timeouts of one channel, all in ms. */
export interface TimeoutsConfig {
  /** TCP and TLS connection setup. Default 5 000. */
  connectMs: number;
  /** From sending a request to its response headers. Default 30 000. */
  headersMs: number;
  /** Longest silence within a streamed response. Default 60 000. */
  streamIdleMs: number;
  /** Overall deadline of one non-streaming request. Default 60 000. */
  requestMs: number;
  /** Overall deadline of a synchronous workflow run (`workflow:{id}`). Default 100 000. */
  syncRunMs: number;
}

/** What discovery may list: bots, workflows and chatflows. */
export type DiscoveryKind = "bot" | "workflow" | "chatflow";

/**
 * Listing a channel's Coze space as models (coze-api.md §13): its published bots, workflows and
 * chatflows, refreshed in the background.
 */
export interface DiscoveryConfig {
  /**
   * Whether the channel lists its space. On when the channel has a `discovery` section (or
   * `discovery: true`) and not `enabled: false`; the channel then has a `spaceId`.
   */
  enabled: boolean;
  /**
   * How a listed item is named: `id` (the default) as `bot:{id}`, `workflow:{id}` or
   * `chatflow:{id}`; `name` as its Coze name, made a valid model name, or its `id` name when
   * that cannot be done or the name is taken.
   */
  naming: "id" | "name";
  /** Time between two refreshes of the list, in ms. Default 300 000 (5 min). */
  intervalMs: number;
  /**
   * Longest the start waits for the first list, in ms; 0 does not wait. Default 5 000. When the
   * wait ends first, the gateway starts with the configured routes and the list arrives later.
   */
  startWaitMs: number;
  /** What is listed. Default all three. */
  kinds: readonly DiscoveryKind[];
  /** Most models of each kind taken from the space; the pages asked for are bounded by it. Default 500. */
  maxModels: number;
}

/**
 * Per-end-user Coze sessions of a channel (coze-api.md §12.2): each end user of each key gets a
 * JWT `session_name` of its own, so Coze keeps their conversations and variables apart.
 */
export interface SessionsConfig {
  /** On: sessions per key and end user. Off (the default): one session per key. */
  perUser: boolean;
  /** Most end-user sessions whose tokens are cached at once. Default 1 000. */
  maxCached: number;
}

/**
 * One Coze account reached through one OAuth JWT app (the old new-api "Coze JWT channel") or
 * through a personal access token (new-api's plain "Coze" channel).
 */
export interface ChannelConfig {
  /** Unique name, `[a-z0-9][a-z0-9_-]*`; safe to log. */
  name: string;
  /** Coze API base URL without trailing slash. Default `https://api.coze.cn`. */
  baseUrl: string;
  /**
   * An OAuth JWT app, as the token cache needs it: `baseUrl`, `clientId`, `publicKeyId`,
   * `privateKey` (the parsed key object, checked at load; a secret), `sessionName` when set,
   * `accountId` or `enterpriseId` when set, and `durationSeconds`. Or a personal access token
   * (`kind: "pat"`; a secret).
   */
  credential: CozeCredential | PatCredential;
  /** Per-end-user sessions (JWT channels only); absent: one session per key. */
  sessions?: SessionsConfig;
  /** The Coze space id, when the settings name one. A string of digits. */
  spaceId?: string;
  /** The bot plain model names go to when their entry names none. A string of digits. */
  defaultBotId?: string;
  /**
   * Receives the dynamic names (`workflow:`, `workflow-async:`, `chatflow:`, `bot:`). Exactly
   * one channel has it; a lone channel always does.
   */
  isDefault: boolean;
  /** How long before expiry the access token is refreshed, in ms. Default 300 000 (5 min). */
  refreshMarginMs: number;
  /** Async workflow polling. */
  polling: PollingConfig;
  /** Upstream timeouts. */
  timeouts: TimeoutsConfig;
  /** The cap on concurrent calls to Coze; `undefined` for none. */
  limits?: ChannelLimitsConfig | undefined;
  /** Listing the space as models; `enabled: false` unless asked for. */
  discovery: DiscoveryConfig;
}

/**
 * What a model name runs: `bot` (a chat with a bot), `workflow` (run and wait),
 * `workflow_async` (start with `is_async`, then poll the run) or `chatflow`.
 */
export type ModelKind = "bot" | "workflow" | "workflow_async" | "chatflow";

/** Where one model name goes. */
export interface ModelRoute {
  /** The model name callers send. */
  name: string;
  /** The name of the channel that serves it. */
  channel: string;
  /** What runs. */
  kind: ModelKind;
  /** The bot id or workflow id, a string of digits (never a number: Coze ids have 19 digits). */
  targetId: string;
  /**
   * The workflow parameter that receives the caller's last message. Default `input`. Bots
   * ignore it.
   */
  inputField: string;
  /**
   * Share of new requests when several channels serve this name (failover routes). Default 1.
   */
  weight: number;
}

/** A validated gateway configuration. Holds secrets: never log it whole. */
export interface GatewayConfig {
  /** The config file path as given, or a label such as `demo`. */
  source: string;
  /**
   * SHA-256 of the file's bytes in hex, as `sha256sum` prints it (`loadConfig`); `undefined` for
   * a config not read from a file. Names the config in logs and metrics without its content.
   */
  sha256?: string | undefined;
  /** The listening side. */
  server: ServerConfig;
  /**
   * `server_secret`, UTF-8 bytes: what binds every id handed out to the API key it was handed
   * to, and derives each key's Coze `user_id` and `session_name`. The same on every replica. A
   * secret: never logged.
   */
  serverSecret: Buffer;
  /** Caller keys, at least one. */
  apiKeys: ApiKeyConfig[];
  /** Coze channels, at least one, in file order. */
  channels: ChannelConfig[];
  /** Where limit counters and quotas live; `undefined` is the default, in memory. */
  state?: StateConfig | undefined;
  /** How replies resume interrupted workflows; `undefined` is the default (a day). */
  interrupts?: InterruptsConfig | undefined;
  /**
   * Explicit model routes of every channel, in file order. A name is unique within a channel;
   * several channels may serve the same name (same kind), for failover.
   */
  models: ModelRoute[];
  /** Span export over OTLP (`tracing`); `undefined`: no spans, `traceparent` only passed on. */
  tracing?: TracingConfig | undefined;
  /**
   * Things that work but look wrong, one sentence each, naming the file and field but never a
   * secret: a file holding secrets readable by others, unknown settings keys that are ignored, an
   * allow-list entry that matches no model, plain http to a remote Coze host.
   */
  warnings: string[];
}
