import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "./proc.js";

/** What one load run measured. */
export interface LoadResult {
  /** Completed requests with a 2xx status. */
  requests: number;
  /** Failed requests: connect/read/write errors, timeouts, non-2xx. */
  errors: number;
  seconds: number;
  rps: number;
  /** Latency percentiles in ms (wrk only). */
  p50Ms?: number;
  p90Ms?: number;
  p99Ms?: number;
}

/**
 * wrk (HTTP/1.1, keep-alive, one connection per concurrent request) POSTing `body` as JSON with
 * the bearer `key`. One thread: the machine has two cores, shared with the emulator and the proxy.
 * The Lua `done` hook prints the counts and latency percentiles (µs precision) as one JSON line.
 */
export async function wrk(options: {
  url: string;
  key: string;
  body: string;
  connections: number;
  seconds: number;
  dir: string;
}): Promise<LoadResult> {
  const script = join(options.dir, "wrk-post.lua");
  writeFileSync(
    script,
    `wrk.method = "POST"
wrk.body = ${luaString(options.body)}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = ${luaString(`Bearer ${options.key}`)}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
`,
  );
  const out = await run("wrk", [
    "-t1",
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    "--timeout",
    "10s",
    "-s",
    script,
    options.url,
  ]);
  const line = out.split("\n").find((l) => l.startsWith("BENCH "));
  if (!line) throw new Error(`wrk printed no result:\n${out}`);
  const r = JSON.parse(line.slice(6)) as Record<string, number>;
  const n = (k: string) => r[k] ?? 0;
  const errors = n("connect") + n("read") + n("write") + n("status") + n("timeout");
  const seconds = n("us") / 1e6;
  const ok = n("requests") - n("status");
  return {
    requests: ok,
    errors,
    seconds,
    rps: ok / seconds,
    p50Ms: n("p50") / 1000,
    p90Ms: n("p90") / 1000,
    p99Ms: n("p99") / 1000,
  };
}

function luaString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, "\\n")}"`;
}

/**
 * h2load over HTTP/2 cleartext with prior knowledge (what gRPC and Connect clients over h2 do):
 * `clients` connections, `streams` concurrent requests on each, POSTing the binary `body` with
 * `headers`, for `seconds` after a warm-up of `warmUpSeconds` (default one second).
 */
export async function h2load(options: {
  url: string;
  headers: Record<string, string>;
  body: Uint8Array;
  clients: number;
  streams: number;
  seconds: number;
  warmUpSeconds?: number;
  dir: string;
}): Promise<LoadResult> {
  const data = join(options.dir, "h2load-body.bin");
  writeFileSync(data, options.body);
  const args = [
    "-t1",
    `-c${options.clients}`,
    `-m${options.streams}`,
    `-D${options.seconds}`,
    `--warm-up-time=${options.warmUpSeconds ?? 1}`,
    "-d",
    data,
  ];
  for (const [k, v] of Object.entries(options.headers)) args.push("-H", `${k}: ${v}`);
  args.push(options.url);
  const out = await run("h2load", args);
  const m =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      out,
    );
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (!m || !status) throw new Error(`h2load printed no result:\n${out}`);
  const ok = Number(status[1]);
  const failed = Number(m[5]) + Number(m[6]) + Number(m[7]);
  const errors = failed + Number(status[3]) + Number(status[4]);
  return { requests: ok, errors, seconds: options.seconds, rps: ok / options.seconds };
}
