// The limits scenario's gateways: three processes of one build and one config, differing only in
// the bench key's limits and where their counters live: none ("limits-off"), in memory, and on a
// Redis server the bench starts itself. A fresh set per repetition: an A/A run showed one
// process staying 10-15% cheaper or dearer than its twin for its whole life (how it was compiled
// and laid out), which alternating runs of the same processes cannot cancel. So each gateway also
// holds a second key that never has limits: the limited key's calls held against that key's in
// the same process leave the luck of the process as a whole out of the ratio (not that of each
// path through it: BENCHMARKS.md).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Bench, ProxyUnderTest } from "../lib/context.js";
import { freePort, type NodeProcess, waitForHttp } from "../lib/proc.js";
import { type BenchRedis, redisServerPath, startBenchRedis } from "../lib/redis.js";
import { restBody } from "./unary.js";

/** The bench key's limits in the limited gateways: every kind set, none ever reached. */
export const benchKeyLimits = {
  requests_per_minute: 1_000_000,
  tokens_per_minute: 1_000_000_000,
  tokens_per_day: 1_000_000_000_000,
  max_streams: 1000,
  quota: { tokens: 1_000_000_000_000, per: "month" },
};

/** The second caller key of every gateway in the scenario: never limited. */
export const plainKey = "bench-plain-0123456789abcdef";

/** One set of the three gateways, started together. */
export interface LimitSet {
  off: ProxyUnderTest;
  memory: ProxyUnderTest;
  /** Absent when `redis-server` is not installed. */
  redis: ProxyUnderTest | undefined;
  /**
   * The memory and Redis gateways again, called with the key without limits (`plainKey`): the
   * same processes, named `<name>-plain`.
   */
  plain: ProxyUnderTest[];
  /** Stops the set's processes. */
  stop(): Promise<void>;
}

/** What the scenario runs on: sets of gateways, and the Redis server of the third. */
export interface LimitGateways {
  redisServer: BenchRedis | undefined;
  /** Whether the limited gateways are configured without limits (an A/A run). */
  aa: boolean;
  /** Starts a fresh set (its processes' logs are numbered `round`) once all three answer. */
  startSet(round: number): Promise<LimitSet>;
  /** Stops the Redis server. */
  stop(): Promise<void>;
}

/**
 * Prepares the gateways from the bench's gateway config at `config` (a JSON file) and starts the
 * Redis server; `start` runs one gateway process with the config file it is given.
 */
export async function startLimitGateways(options: {
  config: string;
  dir: string;
  /** A file descriptor for the Redis server's output. */
  redisLog: number;
  /** A/A: every gateway without limits and in memory, under the same names. */
  aa?: boolean;
  start(name: string, config: string): NodeProcess;
  log(line: string): void;
}): Promise<LimitGateways> {
  const base = JSON.parse(readFileSync(options.config, "utf8")) as {
    server: { port: number };
    api_keys: { name: string; key: string; limits?: unknown }[];
    state?: unknown;
  };
  const aa = options.aa === true;
  const redisServer = await startBenchRedis(options.redisLog);
  if (redisServer === undefined) {
    options.log(
      `limits: no Redis column: ${redisServerPath} is absent (apt-get install redis-server)`,
    );
  }
  const gateway = async (
    name: string,
    round: number,
    limits: boolean,
    state: unknown,
  ): Promise<ProxyUnderTest> => {
    const port = await freePort();
    const config = structuredClone(base);
    config.server.port = port;
    if (limits && !aa) for (const k of config.api_keys) k.limits = benchKeyLimits;
    config.api_keys.push({ name: "bench-plain", key: plainKey });
    if (state !== undefined && !aa) config.state = state;
    const file = join(options.dir, `gateway-${name}.json`);
    writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
    const process = options.start(`${name}.${round}`, file);
    return { name, url: `http://127.0.0.1:${port}`, process };
  };
  return {
    redisServer,
    aa,
    async startSet(round) {
      const started: ProxyUnderTest[] = [];
      const stop = async () => {
        await Promise.all(started.map((p) => p.process.stop()));
      };
      try {
        const off = await gateway("limits-off", round, false, undefined);
        started.push(off);
        const memory = await gateway("limits-memory", round, true, undefined);
        started.push(memory);
        const redis =
          redisServer &&
          (await gateway("limits-redis", round, true, { store: "redis", url: redisServer.url }));
        if (redis) started.push(redis);
        for (const p of started) await waitForHttp(`${p.url}/healthz`);
        const plain = started
          .filter((p) => p !== off)
          .map((p) => ({ ...p, name: `${p.name}-plain`, key: plainKey }));
        return { off, memory, redis, plain, stop };
      } catch (err) {
        await stop();
        throw err;
      }
    },
    stop: async () => redisServer?.stop(),
  };
}

/**
 * Checks that the limited gateways apply the limits: a REST chat through each answers 200, with
 * OpenAI's `x-ratelimit-limit-requests` for the limited key only (a Redis store that failed open
 * would answer without it), not for the gateway without limits nor for the key without limits.
 */
export async function checkLimitsApply(bench: Bench, set: LimitSet): Promise<void> {
  for (const [proxy, limited] of [
    [set.off, false],
    [set.memory, true],
    [set.redis, true],
    ...set.plain.map((p) => [p, false] as const),
  ] as const) {
    if (proxy === undefined) continue;
    const key = proxy.key ?? bench.key;
    const res = await fetch(`${proxy.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: restBody,
    });
    await res.arrayBuffer();
    const header = res.headers.get("x-ratelimit-limit-requests");
    const expected = limited ? String(benchKeyLimits.requests_per_minute) : null;
    if (res.status !== 200 || header !== expected) {
      throw new Error(
        `${proxy.name}: expected 200 with x-ratelimit-limit-requests ${expected}, got ${res.status} with ${header}`,
      );
    }
  }
}
