import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { pathToFileURL } from "node:url";

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux). */
const clockTicks = 100;

/** CPU time (user + system, all threads) a process has used so far, in ms, from `/proc`. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name may hold spaces: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / clockTicks;
}

/** Resident set size of a process, in bytes, from `/proc/<pid>/status`. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  return Number(kb ?? 0) * 1024;
}

/** A TCP port free right now on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once `url` answers any HTTP status; rejects after `timeoutMs`. */
export async function waitForHttp(url: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch (err) {
      if (Date.now() > until) throw new Error(`${url} did not come up`, { cause: err });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** The bench's probe module (GC and heap on request, over IPC), as a `--import` argument. */
export function probeImport(): string {
  return `--import=${pathToFileURL(new URL("../probe.js", import.meta.url).pathname).href}`;
}

/** A Node process the bench started, with an IPC channel. */
export interface NodeProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Sends `message` and resolves with the first reply of the same `type`. */
  ask<T>(message: { type: string; [k: string]: unknown }): Promise<T>;
  /** Collects garbage twice in the process and returns `process.memoryUsage()`. */
  heap(): Promise<NodeJS.MemoryUsage>;
  stop(): Promise<void>;
}

/**
 * Starts `node <args>` with an IPC channel; stdout and stderr go to `log` (a file descriptor) so
 * that nothing the process writes costs the harness CPU.
 */
export function startNode(
  name: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; log: number },
): NodeProcess {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...options.env },
    stdio: ["ignore", options.log, options.log, "ipc"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("exit", (code, signal) => {
    if (!stopping) process.stderr.write(`bench: ${name} exited early (${code ?? signal})\n`);
  });
  let stopping = false;
  const ask = <T>(message: { type: string }) =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (m: { type?: string }) => {
        if (m?.type !== message.type) return;
        child.off("message", onMessage);
        child.off("exit", onExit);
        resolve(m as T);
      };
      const onExit = () => reject(new Error(`${name} exited`));
      child.on("message", onMessage);
      child.once("exit", onExit);
      child.send(message);
    });
  return {
    name,
    child,
    pid: child.pid as number,
    ask,
    heap: () => ask<{ usage: NodeJS.MemoryUsage }>({ type: "heap" }).then((m) => m.usage),
    async stop() {
      stopping = true;
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Waits for the first IPC message of `type` from `child`. */
export function nextMessage<T>(child: ChildProcess, type: string, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} message`)), timeoutMs);
    const onMessage = (m: { type?: string }) => {
      if (m?.type !== type) return;
      clearTimeout(timer);
      child.off("message", onMessage);
      resolve(m as T);
    };
    child.on("message", onMessage);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`process exited (${code}) before ${type}`));
    });
  });
}

/** Runs a command to its end; resolves with its stdout, rejects on a non-zero exit. */
export function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} exited with ${code}: ${err.slice(0, 500)}`));
    });
  });
}

/** Sleeps `ms` real milliseconds (the harness only; never in tests). */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
