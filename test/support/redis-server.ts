import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { Redis } from "ioredis";

/** Where Debian's `redis-server` package puts the server; `.ci/run` installs it. */
export const redisServerPath = "/usr/bin/redis-server";

/**
 * Whether a real Redis server can be started here. Tests that need one skip only when it is
 * absent (and fail under CI, which always installs it).
 */
export const haveRedis = existsSync(redisServerPath);

/** Why a Redis test skipped, for the test's name. */
export const redisSkipReason = haveRedis
  ? ""
  : ` (skipped: ${redisServerPath} is absent; apt-get install redis-server)`;

if (!haveRedis && process.env.CI) {
  throw new Error(`${redisServerPath} is absent: .ci/run installs redis-server`);
}

/** A `redis-server` of the test's own on 127.0.0.1, without persistence. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Stops the server (SIGTERM) and waits for it to exit: its data is gone. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open, nothing answers. */
  pause(): void;
  /** Thaws a paused server (SIGCONT). */
  resume(): void;
  /** A client of the test's own (for MONITOR, FLUSHALL, PTTL …); closed with the server. */
  client(): Redis;
  /** Stops the server and closes the test's clients. */
  close(): Promise<void>;
}

/** A port free now on 127.0.0.1. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** Starts `redis-server` on a free loopback port and waits until it accepts connections. */
export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const clients: Redis[] = [];

  async function start(): Promise<void> {
    const proc = spawn(
      redisServerPath,
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child = proc;
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill("SIGKILL");
        reject(new Error(`redis-server did not start: ${output.slice(-1000)}`));
      }, 10_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Ready to accept connections")) {
          clearTimeout(timer);
          proc.stdout?.off("data", onData);
          resolve();
        }
      };
      proc.stdout?.on("data", onData);
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}: ${output.slice(-1000)}`));
      });
    });
    // Later output is not read: drain it so the pipe never fills.
    proc.stdout?.resume();
    proc.stderr?.resume();
  }

  async function stop(): Promise<void> {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGCONT");
    proc.kill("SIGTERM");
    await exited;
  }

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    pause: () => child?.kill("SIGSTOP"),
    resume: () => child?.kill("SIGCONT"),
    client() {
      const c = new Redis(port, "127.0.0.1", { lazyConnect: false, maxRetriesPerRequest: 1 });
      c.on("error", () => {});
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.disconnect();
      await stop();
    },
  };
}

/** Commands a Redis server received from clients (not those its scripts ran), by name. */
export interface CommandCounter {
  /** Commands named `name` (`evalsha`, `eval`, `get` …) seen so far. */
  count(name: string): number;
  /**
   * Commands the scripts ran on keys named `key`, by name (`zadd`, `zrem` …; `zadd xx` for a
   * ZADD that only updates).
   */
  scripted(key: string, name: string): number;
  /**
   * Resolves once every command sent before the call has been counted: Redis reports commands
   * to MONITOR in the order it runs them, so a marker sent now arrives after all of them.
   */
  settle(): Promise<void>;
  reset(): void;
  close(): void;
}

/** Counts the commands Redis receives from other clients, through MONITOR on a connection of its own. */
export async function monitorCommands(server: RedisServer): Promise<CommandCounter> {
  const monitor = await server.client().monitor();
  const marker = server.client();
  const counts = new Map<string, number>();
  const scripted = new Map<string, number>();
  const waiting = new Map<string, () => void>();
  let seq = 0;
  monitor.on("monitor", (_time: string, args: string[], source: string) => {
    // Commands a Lua script runs are reported too, from source "lua".
    if (source === "lua") {
      const name = (args[0] ?? "").toLowerCase();
      const id = `${args[1]} ${name}${name === "zadd" && args[2] === "XX" ? " xx" : ""}`;
      scripted.set(id, (scripted.get(id) ?? 0) + 1);
      return;
    }
    const name = (args[0] ?? "").toLowerCase();
    if (name === "echo" && waiting.has(args[1] ?? "")) {
      waiting.get(args[1] ?? "")?.();
      return;
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
  });
  return {
    count: (name) => counts.get(name) ?? 0,
    scripted: (key, name) => scripted.get(`${key} ${name}`) ?? 0,
    async settle() {
      const id = `settle-${seq++}`;
      const seen = new Promise<void>((resolve) => waiting.set(id, resolve));
      await marker.echo(id);
      await seen;
      waiting.delete(id);
    },
    reset() {
      counts.clear();
      scripted.clear();
    },
    close() {
      monitor.disconnect();
      marker.disconnect();
    },
  };
}
