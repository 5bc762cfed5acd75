// Issue 15's bench: the cost of per-key limits, side by side with the same build without them.
// Three gateway processes of one build and one config, differing only in the bench key's limits
// and where their counters live: none ("limits-off"), in memory, and on a Redis server the
// bench starts itself.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { alternate, type Bench, emulatorStats, type ProxyUnderTest } from "../lib/context.js";
import type { LoadResult } from "../lib/drivers.js";
import { freePort, type NodeProcess, sleep, waitForHttp } from "../lib/proc.js";
import { type BenchRedis, commandDelta, redisServerPath, startBenchRedis } from "../lib/redis.js";
import { type Spread, spread } from "../lib/stats.js";
import { connectLoad, measured, restBody, restLoad, type UnaryRun } from "./unary.js";

/** The bench key's limits in the limited gateways: every kind set, none ever reached. */
export const benchKeyLimits = {
  requests_per_minute: 1_000_000,
  tokens_per_minute: 1_000_000_000,
  tokens_per_day: 1_000_000_000_000,
  max_streams: 1000,
  quota: { tokens: 1_000_000_000_000, per: "month" },
};

/** The gateways of the scenario, and the Redis server of the third. */
export interface LimitVariants {
  off: ProxyUnderTest;
  memory: ProxyUnderTest;
  /** Absent when `redis-server` is not installed. */
  redis: ProxyUnderTest | undefined;
  redisServer: BenchRedis | undefined;
  /** Whether the limited gateways are configured without limits (an A/A run). */
  aa: boolean;
  /** Stops the Redis server (the gateways are the caller's, from `start`). */
  stop(): Promise<void>;
}

/**
 * Starts the three gateways from the bench's gateway config at `config` (a JSON file), each on a
 * port of its own; `start` runs one gateway process with the config file it is given.
 */
export async function startLimitVariants(options: {
  config: string;
  dir: string;
  /** A file descriptor for the Redis server's output. */
  redisLog: number;
  /** A/A: every gateway without limits and in memory, under the same names. */
  aa?: boolean;
  start(name: string, config: string): NodeProcess;
  log(line: string): void;
}): Promise<LimitVariants> {
  const base = JSON.parse(readFileSync(options.config, "utf8")) as {
    server: { port: number };
    api_keys: { name: string; key: string; limits?: unknown }[];
    state?: unknown;
  };
  const redisServer = await startBenchRedis(options.redisLog);
  if (redisServer === undefined) {
    options.log(
      `limits: no Redis column: ${redisServerPath} is absent (apt-get install redis-server)`,
    );
  }
  const variant = async (
    name: string,
    limits: boolean,
    state: unknown,
  ): Promise<ProxyUnderTest> => {
    const port = await freePort();
    const config = structuredClone(base);
    config.server.port = port;
    if (limits && !options.aa) for (const k of config.api_keys) k.limits = benchKeyLimits;
    if (state !== undefined && !options.aa) config.state = state;
    const file = join(options.dir, `gateway-${name}.json`);
    writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
    return { name, url: `http://127.0.0.1:${port}`, process: options.start(name, file) };
  };
  try {
    const off = await variant("limits-off", false, undefined);
    const memory = await variant("limits-memory", true, undefined);
    const redis =
      redisServer &&
      (await variant("limits-redis", true, { store: "redis", url: redisServer.url }));
    for (const p of [off, memory, redis]) if (p) await waitForHttp(`${p.url}/healthz`);
    return {
      off,
      memory,
      redis,
      redisServer,
      aa: options.aa === true,
      stop: async () => redisServer?.stop(),
    };
  } catch (err) {
    await redisServer?.stop();
    throw err;
  }
}

/**
 * The Redis side of a scenario. Requests are counted as the Coze calls the emulator saw (one per
 * request): the load generators count neither their warm-up (h2load) nor the requests cut at the
 * end of a run.
 */
export interface LimitsOnRedis {
  /** Per measured run: script calls (EVALSHA, or EVAL when the script was not loaded yet). */
  batches: number[];
  /** Per measured run: the requests. */
  requests: number[];
  /** Script calls per request, per run. */
  batchesPerRequest: Spread;
  /**
   * What the gateway sent during a one-second check of the same load under MONITOR (too costly
   * to leave on while CPU is measured): commands by name (a script's own calls left out), and
   * the requests meanwhile.
   */
  sent: { commands: Record<string, number>; requests: number };
  /** The server's CPU per request, in ms. */
  cpuMsPerRequest: Spread;
}

/** One scenario (a door at one concurrency) through the three gateways. */
export interface LimitsScenario {
  name: string;
  concurrency: number;
  /** The measured runs of each gateway, by name. */
  runs: Record<string, UnaryRun[]>;
  /** CPU per request of each limited gateway over `limits-off`, per repetition. */
  cpuRatio: Record<string, Spread>;
  /** Requests per second of each limited gateway over `limits-off`, per repetition. */
  throughputRatio: Record<string, Spread>;
  /** What the Redis server did for the `limits-redis` runs, when there were any. */
  redis?: LimitsOnRedis;
}

/**
 * Checks that the limited gateways apply the limits: a REST chat through each answers 200, with
 * OpenAI's `x-ratelimit-limit-requests` from the limited ones only (a Redis store that failed
 * open would answer without it).
 */
async function checkLimitsApply(bench: Bench, v: LimitVariants): Promise<void> {
  for (const [proxy, limited] of [
    [v.off, false],
    [v.memory, true],
    [v.redis, true],
  ] as const) {
    if (proxy === undefined) continue;
    const res = await fetch(`${proxy.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${bench.key}` },
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

/** Runs one load through the gateways in alternating order, `bench.reps` times after a warm-up. */
async function threeWay(
  bench: Bench,
  v: LimitVariants,
  name: string,
  concurrency: number,
  load: (proxy: ProxyUnderTest, seconds: number) => Promise<LoadResult>,
): Promise<LimitsScenario> {
  const proxies = [v.off, v.memory, ...(v.redis ? [v.redis] : [])];
  for (const proxy of proxies) await load(proxy, bench.warmupSeconds);
  const runs: Record<string, UnaryRun[]> = Object.fromEntries(proxies.map((p) => [p.name, []]));
  const onRedis: { batches: number; requests: number; cpuMs: number }[] = [];
  for (let rep = 0; rep < bench.reps; rep++) {
    for (const proxy of alternate(proxies, rep)) {
      const server = proxy === v.redis && !v.aa ? v.redisServer : undefined;
      const before = server && {
        commands: await server.commandCounts(),
        chats: await cozeChats(bench),
        cpuMs: server.cpuMs(),
      };
      const r = await measured(bench, proxy, () => load(proxy, bench.seconds));
      runs[proxy.name]?.push(r);
      let redisNote = "";
      if (server && before) {
        const cpuMs = server.cpuMs() - before.cpuMs;
        const requests = (await cozeChats(bench)) - before.chats;
        const delta = commandDelta(before.commands, await server.commandCounts());
        const batches = (delta.evalsha ?? 0) + (delta.eval ?? 0);
        onRedis.push({ batches, requests, cpuMs });
        redisNote = `; Redis: ${batches} scripts for ${requests} requests, ${((cpuMs / Math.max(1, requests)) * 1000).toFixed(0)} µs CPU/req`;
      }
      bench.log(
        `  ${name} c=${concurrency} ${proxy.name}: ${r.rps.toFixed(0)} req/s, ${(r.cpuMsPerRequest * 1000).toFixed(0)} µs CPU/req, ${r.errors} errors${redisNote}`,
      );
    }
  }
  const off = runs[v.off.name] as UnaryRun[];
  const ratios = (pick: (x: UnaryRun) => number) =>
    Object.fromEntries(
      proxies
        .filter((p) => p !== v.off)
        .map((p) => {
          const mine = runs[p.name] as UnaryRun[];
          return [p.name, spread(mine.map((x, i) => pick(x) / pick(off[i] as UnaryRun)))];
        }),
    );
  const scenario: LimitsScenario = {
    name,
    concurrency,
    runs,
    cpuRatio: ratios((x) => x.cpuMsPerRequest),
    throughputRatio: ratios((x) => x.rps),
  };
  if (v.redis && v.redisServer && onRedis.length > 0) {
    const chats0 = await cozeChats(bench);
    const monitor = await v.redisServer.monitor();
    await load(v.redis, 1);
    // The last requests' counts go out on their own after the store's flush delay (50 ms).
    await sleep(200);
    const commands = await monitor.stop();
    const sent = { commands, requests: (await cozeChats(bench)) - chats0 };
    bench.log(`  ${name} c=${concurrency} limits-redis under MONITOR: ${JSON.stringify(sent)}`);
    scenario.redis = {
      batches: onRedis.map((x) => x.batches),
      requests: onRedis.map((x) => x.requests),
      batchesPerRequest: spread(onRedis.map((x) => x.batches / Math.max(1, x.requests))),
      sent,
      cpuMsPerRequest: spread(onRedis.map((x) => x.cpuMs / Math.max(1, x.requests))),
    };
  }
  return scenario;
}

/** Chats the emulator has answered so far: one per request through a gateway. */
async function cozeChats(bench: Bench): Promise<number> {
  return (await emulatorStats(bench)).calls.chat ?? 0;
}

/**
 * REST non-stream chat (wrk, c=1 and 16) and Connect unary (h2load, one connection, 16 streams)
 * through the gateway without limits, with the bench key limited in memory, and on Redis.
 */
export async function limitScenarios(bench: Bench, v: LimitVariants): Promise<LimitsScenario[]> {
  if (v.aa) bench.log("  A/A: the three gateways run without limits, in memory");
  else await checkLimitsApply(bench, v);
  const out: LimitsScenario[] = [];
  for (const c of [1, 16]) out.push(await threeWay(bench, v, "rest", c, restLoad(bench, c)));
  out.push(await threeWay(bench, v, "connect", 16, connectLoad(bench, 1, 16)));
  return out;
}
