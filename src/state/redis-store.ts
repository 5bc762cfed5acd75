import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import type { Clock } from "../coze/clock.js";
import { admissionOf, gateOps } from "./admission.js";
import { batchScript, leaseScript, releaseScript } from "./batch-script.js";
import { createDeferredOps } from "./deferred-ops.js";
import { isWriteOnly } from "./memory-store.js";
import {
  type OpResult,
  StateError,
  type StateHealth,
  type StateOp,
  type StateStore,
} from "./state-store.js";

/** Options of {@link createRedisStore}. */
export interface RedisStoreOptions {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://…` (TLS). A secret. */
  url: string;
  /** Longest wait for one command, in ms: past it the call fails (and limits fail open or closed). */
  timeoutMs: number;
  /** Put in front of every key, so that several deployments can share one server. */
  prefix: string;
  /** Longest time deferred operations wait for a round trip to ride along with, in ms. */
  flushMs: number;
  /** Time for windows and periods (sent with every batch), and the flush timer. */
  clock: Clock;
  /** Called when the store becomes unreachable or reachable again. */
  onHealth?: (health: StateHealth) => void;
}

/** The commands the store defines on its client (EVALSHA, EVAL when Redis lacks the script). */
interface ScriptCommands {
  stateBatch(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
  stateLease(key: string, holder: string, ttlMs: number): Promise<number>;
  stateRelease(key: string, holder: string): Promise<number>;
}

/** How long reconnection attempts wait, growing from 100 ms to at most 2 s. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(attempt - 1, 5), 2000);
}

/**
 * The state store on a Redis server, shared by every replica that names it. The batches asked
 * for in one turn of the event loop (requests that arrived together) go out in one EVALSHA of
 * {@link batchScript}, each judged as if alone, carrying the deferred operations too; a deferred
 * operation waits at most `flushMs` for a batch to ride along with. While Redis is unreachable every call
 * fails at once, without waiting (no queue of commands builds up), and the client reconnects by
 * itself; a command sent but not answered within `timeoutMs` fails. Deferred operations are kept
 * (merged, bounded) while Redis is unreachable and sent once it is back; operations of a batch
 * that failed after it was sent are not sent again (Redis may have applied them).
 */
export function createRedisStore(options: RedisStoreOptions): StateStore {
  const { prefix, clock, timeoutMs, flushMs } = options;
  const client = new Redis(options.url, {
    commandTimeout: timeoutMs,
    // A caller never waits for a connection: commands fail at once while there is none.
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    retryStrategy: reconnectDelayMs,
  });
  client.defineCommand("stateBatch", { lua: batchScript });
  client.defineCommand("stateLease", { lua: leaseScript, numberOfKeys: 1 });
  client.defineCommand("stateRelease", { lua: releaseScript, numberOfKeys: 1 });
  const scripts = client as unknown as ScriptCommands;
  const deferred = createDeferredOps();
  // Slot holders go to Redis under this store's random name: no other replica's can collide.
  const replica = randomBytes(6).toString("base64url");
  let holders = 0;
  // `starting` until the first connection or failure: neither is worth a warning before.
  let state: "starting" | "up" | "down" = "starting";
  let downSince: number | undefined;
  let flushing: AbortController | undefined;
  /** Batches waiting for the end of this turn of the event loop. */
  let queued: {
    ops: readonly StateOp[];
    resolve: (results: readonly OpResult[]) => void;
    reject: (err: unknown) => void;
  }[] = [];
  /** When the oldest operation waiting in `deferred` was queued. */
  let oldestDeferredAt = 0;
  let closed = false;

  const health = (): StateHealth =>
    client.status === "ready" && state === "up"
      ? { ok: true, detail: "redis" }
      : { ok: false, detail: `redis unreachable${since()}` };
  const since = () =>
    downSince === undefined ? "" : ` since ${new Date(downSince).toISOString()}`;

  function down(): void {
    if (state === "down" || closed) return;
    state = "down";
    downSince = clock.now();
    options.onHealth?.(health());
  }
  function up(): void {
    if (state === "up" || closed || client.status !== "ready") return;
    state = "up";
    downSince = undefined;
    options.onHealth?.(health());
  }

  // ioredis reports every failed connection attempt as an `error` event; unheard, it would
  // crash the process. The store is down until `ready`.
  client.on("error", down);
  client.on("close", down);
  client.on("ready", () => {
    up();
    if (deferred.size > 0) void flush();
  });

  /** Runs `call` when connected, mapping its failure to a {@link StateError}. */
  function guarded<T>(call: () => Promise<T>): Promise<T> {
    if (closed || client.status !== "ready") {
      return Promise.reject(new StateError("unavailable", "the state store is unreachable"));
    }
    const started = performance.now();
    return call().then(
      (value) => {
        if (state !== "up") up();
        return value;
      },
      (err: unknown) => {
        // ioredis's own word for its command timeout; the elapsed time as well, since a timer
        // may fire a little before `timeoutMs` by this clock.
        const slow =
          (err instanceof Error && err.message === "Command timed out") ||
          performance.now() - started >= timeoutMs;
        down();
        throw new StateError(
          slow ? "timeout" : "unavailable",
          slow
            ? `the state store did not answer within ${timeoutMs} ms`
            : "the state store is unreachable",
          { cause: err },
        );
      },
    );
  }

  /**
   * Queues a batch to go out with the others asked for in this turn of the event loop (the
   * requests that arrived together), in one script call; fails at once while Redis is away.
   */
  function runBatch(ops: readonly StateOp[]): Promise<readonly OpResult[]> {
    if (closed || client.status !== "ready") {
      return Promise.reject(new StateError("unavailable", "the state store is unreachable"));
    }
    return new Promise((resolve, reject) => {
      queued.push({ ops, resolve, reject });
      if (queued.length === 1) setImmediate(sendQueued);
    });
  }

  /** Sends the queued batches, behind the deferred operations, in one script call. */
  function sendQueued(): Promise<void> {
    const batches = queued;
    queued = [];
    return guarded(() => {
      // Taken only once the call goes out: while Redis is down they stay queued.
      const pending = deferred.take();
      const all = [...pending];
      for (const b of batches) all.push(...b.ops);
      const args: (string | number)[] = all.map((op) => prefix + op.key);
      args.push(
        Math.floor(clock.now()),
        pending.length,
        all.map((op) => encode(op, replica)).join(","),
      );
      args.push(batches.map((b) => b.ops.length).join(","));
      return scripts.stateBatch(all.length, ...args);
    }).then(
      (flat) => {
        let at = 0;
        for (const b of batches) {
          b.resolve(decode(flat, at, b.ops.length));
          at += b.ops.length * 5;
        }
      },
      (err: unknown) => {
        for (const b of batches) b.reject(err);
      },
    );
  }

  async function flush(): Promise<void> {
    if (deferred.size === 0 || client.status !== "ready") return;
    try {
      // Alone, unless a request's batch is about to go out with them.
      if (queued.length === 0) await sendQueued();
    } catch {
      // Counted through the store's health; the charges of that batch are lost, not retried.
    }
  }

  /**
   * Sends what is deferred once the oldest of it waited `flushMs`. Operations a batch took
   * meanwhile do not count: those queued after them get their full wait, so that under steady
   * traffic every one rides along with a request's batch and none goes out alone.
   */
  function schedule(delayMs = flushMs): void {
    if (flushing !== undefined || closed) return;
    const timer = new AbortController();
    flushing = timer;
    clock.sleep(delayMs, timer.signal).then(
      async () => {
        flushing = undefined;
        const waited = clock.now() - oldestDeferredAt;
        if (deferred.size > 0 && waited < flushMs) {
          schedule(flushMs - waited);
          return;
        }
        await flush();
        if (deferred.size > 0 && client.status === "ready") schedule();
      },
      () => {},
    );
  }

  return {
    kind: "redis",
    run: runBatch,
    admit: (gates) => runBatch(gateOps(gates)).then((results) => admissionOf(gates, results)),
    holder: () => holders++,
    defer(ops) {
      if (deferred.size === 0) oldestDeferredAt = clock.now();
      deferred.push(ops.filter(isWriteOnly));
      if (deferred.size > 0) schedule();
    },
    get: (key) => guarded(() => client.get(prefix + key)).then((v) => v ?? undefined),
    set: (key, value, ttlMs) =>
      guarded(() => client.set(prefix + key, value, "PX", Math.max(1, Math.ceil(ttlMs)))).then(
        () => undefined,
      ),
    setIfAbsent: (key, value, ttlMs) =>
      guarded(() =>
        client.set(prefix + key, value, "PX", Math.max(1, Math.ceil(ttlMs)), "NX"),
      ).then((v) => v === "OK"),
    delete: (key) => guarded(() => client.del(prefix + key)).then(() => undefined),
    lease: (name, holder, ttlMs) =>
      guarded(() => scripts.stateLease(prefix + name, holder, Math.max(1, Math.ceil(ttlMs)))).then(
        (v) => v === 1,
      ),
    releaseLease: (name, holder) =>
      guarded(() => scripts.stateRelease(prefix + name, holder)).then(() => undefined),
    health,
    async close() {
      if (closed) return;
      flushing?.abort();
      flushing = undefined;
      await flush();
      closed = true;
      if (client.status === "ready") {
        await client.quit().catch(() => client.disconnect());
      } else client.disconnect();
    },
  };
}

/**
 * The five script fields of an operation after its key, comma-separated. No field holds a comma:
 * the numbers are JavaScript's, `replica` base64url.
 */
function encode(op: StateOp, replica: string): string {
  switch (op.kind) {
    case "rate":
      return `r,${op.mode},${op.limit},${op.windowMs},${op.cost}`;
    case "budget":
      return `b,${op.mode},${op.limit},${op.periodEndMs},${Math.round(op.cost)}`;
    case "slots":
      return `s,${op.mode},${op.max},${op.ttlMs},${replica}:${op.holder}`;
  }
}

/** The results of `count` operations from `start` in the script's answer. */
function decode(flat: readonly number[], start: number, count: number): OpResult[] {
  const out: OpResult[] = [];
  for (let i = 0; i < count; i++) {
    const at = start + i * 5;
    out.push({
      allowed: flat[at] === 1,
      used: flat[at + 1] ?? 0,
      remaining: flat[at + 2] ?? 0,
      resetMs: flat[at + 3] ?? 0,
      retryAfterMs: flat[at + 4] ?? 0,
    });
  }
  return out;
}
