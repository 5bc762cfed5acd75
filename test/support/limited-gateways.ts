import type {
  ApiKeyConfig,
  ChannelLimitsConfig,
  KeyLimitsConfig,
  StateConfig,
} from "../../src/config/index.js";
import { hashApiKey, stateDefaults } from "../../src/config/index.js";
import type { Clock } from "../../src/coze/clock.js";
import { type Demo, startDemo } from "../../src/demo.js";
import { type Gateway, startGateway } from "../../src/gateway.js";
import { createObservability } from "../../src/observability/index.js";
import { noLimits } from "./key-limits.js";
import { captureLog, type LogCapture } from "./log-capture.js";

/** A caller key of the test, by its name. */
export interface TestKey {
  name: string;
  /** The key itself: `<name>-key-0123456789abcdef`. */
  key: string;
  limits?: Partial<KeyLimitsConfig>;
}

/** Several gateways (replicas) in this process on one emulator, each with its own store client. */
export interface Replicas {
  demo: Demo;
  gateways: Gateway[];
  urls: string[];
  /** Each replica's log lines. */
  logs: LogCapture[];
  /** The key of `name`. */
  key(name: string): string;
  /** Resolves once every replica's `/readyz` names `state` (e.g. `redis`), bounded. */
  ready(state?: string): Promise<void>;
  close(): Promise<void>;
}

/** The Redis state of a test: `url` and the rest of the defaults. */
export function redisState(url: string, extra: Partial<StateConfig> = {}): StateConfig {
  return { ...stateDefaults, store: "redis", url, prefix: `t${Date.now()}:`, ...extra };
}

/**
 * Starts the emulator (demo mode's) and `count` gateways on its config, with `keys` as extra
 * caller keys, `state` as their store and `channelLimits` on the demo channel.
 */
export async function startReplicas(options: {
  count: number;
  keys: readonly TestKey[];
  state?: StateConfig;
  channelLimits?: ChannelLimitsConfig;
  limitsClock?: Clock;
  /** Emulator pause between stream events, in ms. Default 0. */
  deltaMs?: number;
}): Promise<Replicas> {
  const demo = await startDemo({ port: 0, deltaMs: options.deltaMs ?? 0, pollIntervalMs: 10 });
  const keys: ApiKeyConfig[] = options.keys.map((k) => ({
    name: k.name,
    sha256: hashApiKey(k.key),
    models: undefined,
    rawCozeIds: false,
    limits: k.limits && { ...noLimits, ...k.limits },
  }));
  demo.config.apiKeys.push(...keys);
  demo.config.state = options.state;
  const channel = demo.config.channels[0];
  if (channel !== undefined) channel.limits = options.channelLimits;
  const gateways: Gateway[] = [];
  const logs: LogCapture[] = [];
  const close = async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await demo.close();
  };
  try {
    for (let i = 0; i < options.count; i++) {
      const log = captureLog();
      logs.push(log);
      const observability = createObservability({ level: "info", destination: log.out });
      gateways.push(
        await startGateway({
          config: demo.config,
          limitsClock: options.limitsClock,
          observability,
        }),
      );
    }
  } catch (err) {
    await close();
    throw err;
  }
  const urls = gateways.map((g) => g.url);
  return {
    demo,
    gateways,
    urls,
    logs,
    key(name) {
      const found = options.keys.find((k) => k.name === name);
      if (found === undefined) throw new Error(`no key ${name}`);
      return found.key;
    },
    async ready(state = options.state?.store ?? "memory") {
      for (const url of urls) await readyWith(url, state);
    },
    close,
  };
}

/**
 * Waits (bounded, polling real time: a connection is real I/O) until `/readyz` says `state`
 * (`redis`, `memory`), or a state starting with it when it is several words (`redis unreachable`).
 */
export async function readyWith(url: string, state: string): Promise<Record<string, string>> {
  let last: Record<string, string> = {};
  for (let i = 0; i < 500; i++) {
    last = (await (await fetch(`${url}/readyz`)).json()) as Record<string, string>;
    if (last.state === state || (state.includes(" ") && last.state?.startsWith(state))) return last;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${url}/readyz never said ${state}: ${JSON.stringify(last)}`);
}

/** A test key named `name` with `limits`. */
export function testKey(name: string, limits?: Partial<KeyLimitsConfig>): TestKey {
  return { name, key: `${name}-key-0123456789abcdef`, limits };
}

/** `POST /v1/chat/completions` for the echo bot with `key`, as the OpenAI SDKs send it. */
export function chat(url: string, key: string, content = "Hello", signal?: AbortSignal) {
  return fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "coze-echo", messages: [{ role: "user", content }] }),
    signal,
  });
}

/**
 * Opens a chat stream of the slow bot that stays open until `signal` aborts: a stream slot and a
 * channel's call to Coze held for as long as a test needs.
 */
export function slowStream(url: string, key: string, signal: AbortSignal) {
  return fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: "bot:7390000000000000005",
      stream: true,
      messages: [{ role: "user", content: "take your time" }],
    }),
    signal,
  });
}

/** The `x-ratelimit-*` and `retry-after` headers of a response. */
export function limitHeaders(res: Response): Record<string, string> {
  const out: Record<string, string> = {};
  res.headers.forEach((value, name) => {
    if (name.startsWith("x-ratelimit-") || name === "retry-after") out[name] = value;
  });
  return out;
}
