import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cpuMs, freePort, run } from "./proc.js";

/** Where Debian's `redis-server` package puts the server. */
export const redisServerPath = "/usr/bin/redis-server";

/** A `redis-server` of the bench's own on 127.0.0.1, without persistence. */
export interface BenchRedis {
  readonly port: number;
  readonly url: string;
  readonly pid: number;
  /** Commands the server ran for clients so far, by name (`evalsha`, `eval` …), from `INFO commandstats`. */
  commandCounts(): Promise<Record<string, number>>;
  /**
   * Starts counting, through MONITOR, the commands clients send (not those scripts run): a check
   * of what goes over the wire, too costly to leave on while CPU is measured. `stop` resolves
   * with the counts by name once every command sent before it was counted.
   */
  monitor(): Promise<{ stop(): Promise<Record<string, number>> }>;
  /** CPU time the server has used so far, in ms. */
  cpuMs(): number;
  stop(): Promise<void>;
}

/**
 * Starts `redis-server` on a free loopback port (no RDB snapshots, no AOF: nothing touches the
 * disk during a run), with its output in `log` (a file descriptor); `undefined` when the server
 * is not installed.
 */
export async function startBenchRedis(log: number): Promise<BenchRedis | undefined> {
  if (!existsSync(redisServerPath)) return undefined;
  const port = await freePort();
  const child = spawn(
    redisServerPath,
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: ["ignore", log, log] },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const cli = (...args: string[]) => run("redis-cli", ["-p", String(port), ...args]);
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    const pong = await cli("ping").catch(() => "");
    if (pong.trim() === "PONG") break;
    if (i >= 200) {
      child.kill("SIGKILL");
      throw new Error(`redis-server did not answer on port ${port}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid as number,
    async commandCounts() {
      const out = await cli("info", "commandstats");
      const counts: Record<string, number> = {};
      for (const m of out.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        counts[m[1] as string] = Number(m[2]);
      }
      return counts;
    },
    async monitor() {
      const mon = spawn("redis-cli", ["-p", String(port), "monitor"], {
        stdio: ["ignore", "pipe", "ignore"],
      });
      const counts: Record<string, number> = {};
      const marker = `bench-monitor-${process.pid}-${Date.now()}`;
      let started: () => void = () => {};
      let settled: () => void = () => {};
      const ready = new Promise<void>((resolve) => {
        started = resolve;
      });
      const done = new Promise<void>((resolve) => {
        settled = resolve;
      });
      let rest = "";
      mon.stdout.on("data", (chunk: Buffer) => {
        const lines = (rest + chunk.toString()).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines) {
          if (line.trim() === "OK") started();
          // `1733370000.123456 [0 127.0.0.1:5555] "evalsha" …`; a script's own calls say `[0 lua]`.
          const m = /^\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(line);
          if (!m || m[1] === "lua") continue;
          const name = (m[2] as string).toLowerCase();
          if (name === "echo" && line.includes(marker)) settled();
          else counts[name] = (counts[name] ?? 0) + 1;
        }
      });
      await within(ready, "redis-cli monitor did not start").catch((err: unknown) => {
        mon.kill("SIGTERM");
        throw err;
      });
      return {
        async stop() {
          try {
            await cli("echo", marker);
            await within(done, "redis-cli monitor did not see its marker");
          } finally {
            mon.kill("SIGTERM");
          }
          // The readings' own INFOs are the bench's, not the gateway's.
          delete counts.info;
          return counts;
        },
      };
    },
    cpuMs: () => cpuMs(child.pid as number),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Commands between two {@link BenchRedis.commandCounts} readings, leaving out the readings'
 * own `INFO`s.
 */
export function commandDelta(
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [name, calls] of Object.entries(after)) {
    const n = calls - (before[name] ?? 0);
    if (n > 0 && name !== "info") delta[name] = n;
  }
  return delta;
}

/** `promise`, or a rejection with `message` after 10 s. */
async function within<T>(promise: Promise<T>, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), 10_000);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
