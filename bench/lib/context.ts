import type { NodeProcess } from "./proc.js";

/** A proxy under test: the gateway or a baseline. */
export interface ProxyUnderTest {
  /** `gateway`, `bare-undici` or `bare-connect`. */
  name: string;
  url: string;
  process: NodeProcess;
  /** The caller key its loads send, when not the bench's (a second key of the same process). */
  key?: string;
  /**
   * Stops the process and starts a new one of the same build and config on the same port,
   * ready when it resolves (`--fresh` runs; the gateways only).
   */
  restart?: () => Promise<void>;
}

/** The streams the emulator host recorded (hrtimes in ns, as decimal strings). */
export interface RecordedStream {
  conversationId: string;
  deltas: string[];
  closedAt: string | undefined;
}

/** What every scenario gets. */
export interface Bench {
  /** The gateway's caller key (the baselines ignore it). */
  key: string;
  emulatorUrl: string;
  emulator: NodeProcess;
  gateway: ProxyUnderTest;
  bareUndici: ProxyUnderTest;
  bareConnect: ProxyUnderTest;
  /** Scratch directory for scripts and logs. */
  dir: string;
  /** Seconds per measured load run, and per warm-up. */
  seconds: number;
  warmupSeconds: number;
  /** Measured repetitions per scenario and proxy. */
  reps: number;
  /**
   * `--fresh`: side-by-side scenarios of two gateways start both afresh (and warm them up) for
   * every repetition, so that one process's luck does not weigh on every repetition.
   */
  fresh?: boolean;
  log(line: string): void;
}

/** Switches the emulator host's stream recorder on or off (and forgets what it held). */
export async function recordStreams(bench: Bench, on: boolean): Promise<void> {
  await bench.emulator.ask({ type: "record", on });
}

/** Takes the streams the emulator host recorded that have closed since the last take. */
export async function takeStreams(bench: Bench): Promise<RecordedStream[]> {
  const m = await bench.emulator.ask<{ streams: RecordedStream[] }>({ type: "take" });
  return m.streams;
}

/** The emulator's counters. */
export async function emulatorStats(bench: Bench): Promise<{
  openStreams: number;
  calls: Record<string, number>;
  tokenRequests: number;
}> {
  const res = await fetch(`${bench.emulatorUrl}/__emulator/stats`);
  return (await res.json()) as Awaited<ReturnType<typeof emulatorStats>>;
}

/** Calls an emulator admin route. */
export async function emulatorAdmin(
  bench: Bench,
  method: string,
  path: string,
  body?: unknown,
): Promise<void> {
  const res = await fetch(`${bench.emulatorUrl}/__emulator/${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`emulator ${method} ${path}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

/**
 * Orders the proxies of repetition `rep` so neither always runs first (ABBA; with three,
 * ABC CBA: each runs before and after the first as often).
 */
export function alternate<T extends readonly unknown[]>(list: T, rep: number): T {
  return (rep % 2 === 0 ? list : [...list].reverse()) as unknown as T;
}

/** ns (hrtime bigint difference) to ms. */
export const nsToMs = (ns: bigint) => Number(ns) / 1e6;
