import { randomInt } from "node:crypto";
import type { Clock } from "../coze/clock.js";
import { CozeError, fromTransportError, safeMessage } from "../coze/errors.js";
import type { Usage } from "../coze/wire.js";
import type { WorkflowEvent } from "../coze/workflow-stream.js";
import type { WorkflowInterrupt, WorkflowOutput } from "../coze/workflow-types.js";
import { GatewayError } from "./errors.js";

export { isHeldRunId } from "./held-run-id.js";

import type { Tenant } from "./tenant.js";
import { outputCollector } from "./workflow-relay.js";

/** The states of a held run; `interrupted` ends it (the answer is resumed like any interrupt). */
export type HeldStatus = "running" | "success" | "fail" | "interrupted";

/**
 * A workflow run the gateway holds itself over `stream_run`, because Coze refused `is_async`
 * for the channel's plan (coze-api.md §14.1, 6003). It lives in this process only: it is lost
 * when the gateway stops, and other replicas do not know it.
 */
export interface HeldRun {
  /** The run's id as the gateway made it: `0` and 18 digits, never a Coze id (no leading 0). */
  readonly id: string;
  readonly channel: string;
  readonly workflowId: string;
  readonly status: HeldStatus;
  /** The End node's output, once the run succeeded. */
  readonly output: WorkflowOutput | undefined;
  readonly debugUrl: string | undefined;
  readonly usage: Usage | undefined;
  /** The interrupt the run stopped at, when `interrupted`. */
  readonly interrupt: WorkflowInterrupt | undefined;
  /** Why the run failed, when `fail`: Coze's `Error` event, or the stream breaking. */
  readonly error: CozeError | undefined;
  /** Clock times, in ms. */
  readonly createTime: number;
  readonly updateTime: number;
  /** Settles when the run leaves `running`. */
  readonly ended: Promise<void>;
}

/** One read of a watched held run: as `PollTick`, without an upstream call. */
export interface HeldTick {
  run: HeldRun;
  /** 1 for the first read, 2 for the next, … */
  poll: number;
  /** Whether the run left `running`; if so this is the last tick. */
  done: boolean;
}

/** Options for {@link createHeldRuns}. */
export interface HeldRunsOptions {
  clock: Clock;
  /** Most held runs running at once in this process. Default 1 000. */
  maxRunning?: number;
  /** Most held runs one API key has running at once. Default 100. */
  maxRunningPerKey?: number;
  /** How long an ended run can still be read, in ms. Default 3 600 000 (one hour). */
  keepEndedMs?: number;
  /** Most ended runs kept; the oldest go first. Default 10 000. */
  maxEnded?: number;
}

/** The held runs of one gateway process. */
export interface HeldRuns {
  /**
   * Starts a held run: `open` is called with the run's own signal (not the caller's: the run
   * goes on when its caller leaves, like an async run at Coze), and the run counts as started
   * once `open` resolved (Coze accepted the stream). What `open` throws (Coze refusing the
   * request, its rate limit) is thrown, and nothing is held; so is a `signal` that aborts
   * before then. The stream's events are read in the background.
   *
   * @throws GatewayError `resource_exhausted` when the process or the key holds its most runs.
   */
  hold(options: {
    owner: Tenant;
    channel: string;
    workflowId: string;
    signal: AbortSignal;
    open: (signal: AbortSignal) => Promise<AsyncGenerator<WorkflowEvent, void>>;
  }): Promise<HeldRun>;
  /** The held run `id` if `tenant` started it; `undefined` otherwise (unknown, forgotten, another key's). */
  get(tenant: Tenant, id: string): HeldRun | undefined;
  /**
   * Reads `run` every `intervalMs` (and at once when it ends) until it leaves `running`, like
   * polling a run, but from memory. `immediate`: the first read at once. After `maxPolls` reads
   * of a running run it gives up with `still_running`; `signal` ends it with `canceled`.
   */
  watch(
    run: HeldRun,
    signal: AbortSignal,
    polling: { intervalMs: number; maxPolls: number; immediate?: boolean },
  ): AsyncGenerator<HeldTick, void>;
  /** Held runs running now (for metrics and tests). */
  readonly running: number;
  /** Ends every running held run (the gateway shuts down): they fail as `canceled`. */
  close(): void;
}

interface Record extends HeldRun {
  status: HeldStatus;
  output: WorkflowOutput | undefined;
  debugUrl: string | undefined;
  usage: Usage | undefined;
  interrupt: WorkflowInterrupt | undefined;
  error: CozeError | undefined;
  updateTime: number;
  /** The owner's handle of this id: only the tenant that seals the id the same way reads it. */
  owner: string;
  tenant: Tenant;
  stop: AbortController;
  end: () => void;
}

/** Creates the registry of held runs. */
export function createHeldRuns(options: HeldRunsOptions): HeldRuns {
  const { clock } = options;
  const maxRunning = options.maxRunning ?? 1_000;
  const maxPerKey = options.maxRunningPerKey ?? 100;
  const keepEndedMs = options.keepEndedMs ?? 3_600_000;
  const maxEnded = options.maxEnded ?? 10_000;
  const runs = new Map<string, Record>();
  const running = new Set<Record>();
  const perKey = new WeakMap<Tenant, number>();
  // Ended runs in the order they ended, for pruning without timers.
  const ended: Record[] = [];

  function prune() {
    const now = clock.now();
    while (ended.length > 0) {
      const oldest = ended[0] as Record;
      if (ended.length <= maxEnded && now - oldest.updateTime < keepEndedMs) break;
      ended.shift();
      runs.delete(oldest.id);
    }
  }

  function newId(): string {
    for (;;) {
      const id = `0${String(randomInt(1e9)).padStart(9, "0")}${String(randomInt(1e9)).padStart(9, "0")}`;
      if (!runs.has(id)) return id;
    }
  }

  function finish(r: Record, status: HeldStatus) {
    if (r.status !== "running") return;
    r.status = status;
    r.updateTime = clock.now();
    running.delete(r);
    perKey.set(r.tenant, (perKey.get(r.tenant) ?? 1) - 1);
    ended.push(r);
    r.end();
  }

  async function consume(r: Record, events: AsyncGenerator<WorkflowEvent, void>) {
    const collected = outputCollector();
    try {
      for await (const e of events) {
        // Ended already (an interrupt, or closed at shutdown): what follows changes nothing.
        if (r.status !== "running") continue;
        r.updateTime = clock.now();
        if (e.type === "message") collected.add(e);
        else if (e.type === "interrupt") {
          r.interrupt = e.interrupt;
          finish(r, "interrupted");
        } else if (e.type === "done") {
          r.output = collected.output;
          r.usage = collected.usage;
          r.debugUrl = e.debugUrl;
          finish(r, "success");
        }
      }
      if (r.status === "running") {
        // workflowEvents throws for a stream that ends without Done or an interrupt; in case.
        const step = "workflow.stream";
        throw new CozeError("unavailable", `${step}: stream ended before the workflow finished`, {
          step,
        });
      }
    } catch (err) {
      if (r.status !== "running") return;
      r.error =
        err instanceof CozeError ? err : fromTransportError("workflow.stream", err, r.stop.signal);
      finish(r, "fail");
    }
  }

  return {
    get running() {
      return running.size;
    },

    async hold({ owner, channel, workflowId, signal, open }) {
      prune();
      if (running.size >= maxRunning || (perKey.get(owner) ?? 0) >= maxPerKey) {
        throw new GatewayError(
          "resource_exhausted",
          "too many workflow runs held by the gateway at once; try again later",
          { retryAfterMs: 5_000 },
        );
      }
      const stop = new AbortController();
      const onAbort = () => stop.abort(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      let events: AsyncGenerator<WorkflowEvent, void>;
      try {
        events = await open(stop.signal);
        if (signal.aborted) {
          await events.return(undefined).catch(() => {});
          throw fromTransportError("workflow.stream", signal.reason, signal);
        }
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
      let end = () => {};
      const now = clock.now();
      const r: Record = {
        id: newId(),
        channel,
        workflowId,
        status: "running",
        output: undefined,
        debugUrl: undefined,
        usage: undefined,
        interrupt: undefined,
        error: undefined,
        createTime: now,
        updateTime: now,
        ended: new Promise<void>((resolve) => {
          end = resolve;
        }),
        owner: "",
        tenant: owner,
        stop,
        end: () => end(),
      };
      r.owner = owner.seal("run", r.id);
      runs.set(r.id, r);
      running.add(r);
      perKey.set(owner, (perKey.get(owner) ?? 0) + 1);
      void consume(r, events);
      return r;
    },

    get(tenant, id) {
      prune();
      const r = runs.get(id);
      return r !== undefined && tenant.seal("run", id) === r.owner ? r : undefined;
    },

    async *watch(run, signal, polling) {
      for (let poll = 1; poll <= polling.maxPolls; poll++) {
        if (run.status === "running" && !(poll === 1 && polling.immediate)) {
          const wake = new AbortController();
          const onAbort = () => wake.abort();
          signal.addEventListener("abort", onAbort, { once: true });
          try {
            await Promise.race([
              run.ended,
              clock.sleep(polling.intervalMs, wake.signal).catch(() => {}),
            ]);
          } finally {
            signal.removeEventListener("abort", onAbort);
            wake.abort();
          }
        }
        if (signal.aborted) throw fromTransportError("workflow.watch", signal.reason, signal);
        const done = run.status !== "running";
        yield { run, poll, done };
        if (done) return;
      }
      const step = "workflow.watch";
      throw new CozeError("still_running", safeMessage("still_running", step), { step });
    },

    close() {
      const step = "workflow.stream";
      for (const r of [...running]) {
        const reason = new CozeError("canceled", safeMessage("canceled", step), { step });
        r.error = reason;
        finish(r, "fail");
        // Releases the stream (the pools close next, and would wait for it).
        r.stop.abort(reason);
      }
    },
  };
}
