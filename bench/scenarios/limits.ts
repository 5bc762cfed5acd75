// Issue 15's bench: the cost of per-key limits, side by side with the same build without them
// (the gateways: limit-gateways.ts). Each repetition starts a fresh set of the three gateways,
// warms each up (one long load, then a few of one slice), and measures each door on each gateway
// in one-second slices taken in turn (ABC CBA ABC…), summed per gateway: one ratio per gateway and
// repetition. The limited gateways take slices of their key without limits too, so each limited
// key is also held against a key without limits in its own process.
import { alternate, type Bench, emulatorStats, type ProxyUnderTest } from "../lib/context.js";
import type { LoadResult } from "../lib/drivers.js";
import { cpuMs, sleep } from "../lib/proc.js";
import { type BenchRedis, commandDelta } from "../lib/redis.js";
import { type Spread, spread } from "../lib/stats.js";
import { checkLimitsApply, type LimitGateways, type LimitSet } from "./limit-gateways.js";
import { connectLoad, restLoad, type UnaryRun } from "./unary.js";

/** The length of one measured slice, in seconds. */
const sliceSeconds = 1;

/**
 * Loads of one slice each gateway takes in turn after its warm-up, unmeasured. Each load opens
 * new connections, and the first ones after a warm-up set V8 deoptimizing and optimizing again
 * (in six such seconds after a 5-s warm-up: 45, 27, 9, 8, 3, 3 functions optimized, 30 deopts in
 * the first): compiler work on the first measured slices, more in one process than another.
 */
const settleSlices = 4;

/**
 * The Redis side of a scenario. Requests are counted as the Coze calls the emulator saw (one per
 * request): the load generators count neither their warm-up (h2load) nor the requests cut at the
 * end of a run.
 */
export interface LimitsOnRedis {
  /** Per repetition: script calls (EVALSHA, or EVAL when the script was not loaded yet). */
  batches: number[];
  /** Per repetition: the requests. */
  requests: number[];
  /** Script calls per request, per repetition. */
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
  /** CPU per request of each gateway over `limits-off`, per repetition. */
  cpuRatio: Record<string, Spread>;
  /**
   * CPU per request of each limited gateway's limited key over its key without limits (its
   * `-plain` runs), per repetition: the same process, so its own luck cancels.
   */
  sameProcessRatio?: Record<string, Spread>;
  /** Requests per second of each limited gateway over `limits-off`, per repetition. */
  throughputRatio: Record<string, Spread>;
  /** What the Redis server did for the `limits-redis` runs, when there were any. */
  redis?: LimitsOnRedis;
}

type Load = (proxy: ProxyUnderTest, seconds: number) => Promise<LoadResult>;

/** What one door's runs gathered over the repetitions. */
interface Gathered {
  name: string;
  concurrency: number;
  load: Load;
  runs: Record<string, UnaryRun[]>;
  onRedis: { batches: number; requests: number; cpuMs: number }[];
  sent?: LimitsOnRedis["sent"];
}

/** Chats the emulator has answered so far: one per request through a gateway. */
async function cozeChats(bench: Bench): Promise<number> {
  return (await emulatorStats(bench)).calls.chat ?? 0;
}

/** What one gateway did over a repetition's slices of one door. */
interface Tally {
  cpuMs: number;
  emulatorCpuMs: number;
  /** Coze chats the emulator answered meanwhile: the requests the gateway served. */
  requests: number;
  errors: number;
  seconds: number;
  /** Redis script calls and server CPU, for the gateway on Redis. */
  batches: number;
  redisCpuMs: number;
}

const emptyTally = (): Tally => ({
  cpuMs: 0,
  emulatorCpuMs: 0,
  requests: 0,
  errors: 0,
  seconds: 0,
  batches: 0,
  redisCpuMs: 0,
});

/**
 * One slice of `proxy` under the door's load, added to `tally`; with `server`, what Redis did
 * meanwhile. The requests are the Coze chats the emulator answered over the same window as the
 * CPU: the load generators' own counts leave out their warm-up and the requests cut at the end.
 */
async function slice(
  bench: Bench,
  door: Gathered,
  proxy: ProxyUnderTest,
  server: BenchRedis | undefined,
  tally: Tally,
): Promise<void> {
  const commands = server && (await server.commandCounts());
  const redisCpu0 = server?.cpuMs() ?? 0;
  const chats0 = await cozeChats(bench);
  const cpu0 = cpuMs(proxy.process.pid);
  const emu0 = cpuMs(bench.emulator.pid);
  const r = await door.load(proxy, sliceSeconds);
  tally.cpuMs += cpuMs(proxy.process.pid) - cpu0;
  tally.emulatorCpuMs += cpuMs(bench.emulator.pid) - emu0;
  tally.requests += (await cozeChats(bench)) - chats0;
  tally.errors += r.errors;
  tally.seconds += r.seconds;
  if (server && commands) {
    tally.redisCpuMs += server.cpuMs() - redisCpu0;
    const delta = commandDelta(commands, await server.commandCounts());
    tally.batches += (delta.evalsha ?? 0) + (delta.eval ?? 0);
  }
}

/** A repetition's tally of one gateway as a run, logged. */
function record(bench: Bench, door: Gathered, name: string, t: Tally, onRedis: boolean): void {
  const requests = Math.max(1, t.requests);
  const run: UnaryRun = {
    requests: t.requests,
    errors: t.errors,
    seconds: t.seconds,
    rps: t.requests / Math.max(1e-9, t.seconds),
    cpuMsPerRequest: t.cpuMs / requests,
    emulatorCpuMsPerRequest: t.emulatorCpuMs / requests,
  };
  door.runs[name]?.push(run);
  let note = "";
  if (onRedis) {
    door.onRedis.push({ batches: t.batches, requests: t.requests, cpuMs: t.redisCpuMs });
    note = `; Redis: ${t.batches} scripts for ${t.requests} requests, ${((t.redisCpuMs / requests) * 1000).toFixed(0)} µs CPU/req`;
  }
  bench.log(
    `  ${door.name} c=${door.concurrency} ${name}: ${run.rps.toFixed(0)} req/s, ${(run.cpuMsPerRequest * 1000).toFixed(0)} µs CPU/req, ${run.errors} errors${note}`,
  );
}

/**
 * What the gateway sends Redis, by name, during one second of the door's load under MONITOR
 * (too costly to leave on while CPU is measured).
 */
async function monitored(
  bench: Bench,
  door: Gathered,
  proxy: ProxyUnderTest,
  server: BenchRedis,
): Promise<LimitsOnRedis["sent"]> {
  const chats0 = await cozeChats(bench);
  const monitor = await server.monitor();
  await door.load(proxy, 1);
  // The last requests' counts go out on their own after the store's flush delay (50 ms).
  await sleep(200);
  const commands = await monitor.stop();
  const sent = { commands, requests: (await cozeChats(bench)) - chats0 };
  bench.log(
    `  ${door.name} c=${door.concurrency} ${proxy.name} under MONITOR: ${JSON.stringify(sent)}`,
  );
  return sent;
}

/** The door's scenario: its runs, and the ratios of each repetition's set. */
function scenarioOf(door: Gathered, names: readonly string[]): LimitsScenario {
  const over = (n: string, base: string, pick: (x: UnaryRun) => number) => {
    const baseRuns = door.runs[base] ?? [];
    return spread((door.runs[n] ?? []).map((x, i) => pick(x) / pick(baseRuns[i] as UnaryRun)));
  };
  const ratios = (pick: (x: UnaryRun) => number) =>
    Object.fromEntries(
      names.filter((n) => n !== "limits-off").map((n) => [n, over(n, "limits-off", pick)]),
    );
  const scenario: LimitsScenario = {
    name: door.name,
    concurrency: door.concurrency,
    runs: door.runs,
    cpuRatio: ratios((x) => x.cpuMsPerRequest),
    throughputRatio: ratios((x) => x.rps),
    sameProcessRatio: Object.fromEntries(
      names
        .filter((n) => names.includes(`${n}-plain`))
        .map((n) => [n, over(n, `${n}-plain`, (x) => x.cpuMsPerRequest)]),
    ),
  };
  const { onRedis, sent } = door;
  if (onRedis.length > 0 && sent) {
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

/**
 * REST non-stream chat (wrk, c=1 and 16) and Connect unary (h2load, one connection, 16 streams)
 * through the gateway without limits, with the bench key limited in memory, and on Redis; and
 * through the limited gateways with their key without limits.
 */
export async function limitScenarios(bench: Bench, g: LimitGateways): Promise<LimitsScenario[]> {
  if (g.aa) bench.log("  A/A: the three gateways run without limits, in memory");
  const doors: Gathered[] = [
    { name: "rest", concurrency: 1, load: restLoad(bench, 1), runs: {}, onRedis: [] },
    { name: "rest", concurrency: 16, load: restLoad(bench, 16), runs: {}, onRedis: [] },
    { name: "connect", concurrency: 16, load: connectLoad(bench, 1, 16, 0), runs: {}, onRedis: [] },
  ];
  let names: string[] = [];
  for (let rep = 0; rep < bench.reps; rep++) {
    const set: LimitSet = await g.startSet(rep + 1);
    try {
      if (rep === 0 && !g.aa) await checkLimitsApply(bench, set);
      // Each process's two keys sit at mirrored places (limited first and plain last, or
      // second and second to last): the turns run back and forth (ABCDE EDCBA), so each key
      // follows the same neighbours, and runs twice in a row at a turn, as often as its twin.
      const proxies = [
        set.memory,
        ...(set.redis ? [set.redis] : []),
        set.off,
        ...[...set.plain].reverse(),
      ];
      names = proxies.map((p) => p.name);
      for (const door of doors) {
        for (const p of proxies) door.runs[p.name] ??= [];
        // The gateway without limits warms up twice, as the others do, one load per key: an
        // A/A run read it 5 % dearer than them with one.
        const warming = [...proxies, set.off];
        for (const p of warming) await door.load(p, bench.warmupSeconds);
        for (let s = 0; s < settleSlices; s++) {
          for (const p of warming) await door.load(p, sliceSeconds);
        }
        // The measured seconds in one-second slices, each gateway in turn (ABC CBA ABC…): the
        // machine's own drift over a repetition then falls on all three alike.
        const gateways = proxies.map((proxy) => ({
          proxy,
          // The Redis server whose commands and CPU go with this gateway's slices, if any.
          server: proxy === set.redis && !g.aa ? g.redisServer : undefined,
          tally: emptyTally(),
        }));
        const slices = Math.max(1, Math.round(bench.seconds / sliceSeconds));
        for (let s = 0; s < slices; s++) {
          for (const { proxy, server, tally } of alternate(gateways, rep + s)) {
            await slice(bench, door, proxy, server, tally);
          }
        }
        for (const { proxy, server, tally } of gateways) {
          record(bench, door, proxy.name, tally, server !== undefined);
        }
        if (rep === bench.reps - 1 && set.redis && g.redisServer && !g.aa) {
          door.sent = await monitored(bench, door, set.redis, g.redisServer);
        }
      }
    } finally {
      await set.stop();
    }
  }
  return doors.map((door) => scenarioOf(door, names));
}
