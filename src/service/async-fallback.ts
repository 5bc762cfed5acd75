import { isCozeError } from "../coze/errors.js";
import type { WorkflowRunRequest } from "../coze/workflow.js";
import { gated, gatedOpen } from "./channel-gate.js";
import type { HeldRun, HeldRuns } from "./held-runs.js";
import type { Target } from "./routing.js";
import type { Tenant } from "./tenant.js";

/**
 * What the gateway reports when a `workflow-async:` run falls back to a held run (issue 17):
 * for the log (once per channel: `first`) and the metrics (every time).
 */
export interface AsyncFallbackEvent {
  /** The channel whose Coze plan refused `is_async`. */
  channel: string;
  /**
   * `refused`: Coze answered 6003 to this start; `remembered`: it did so within the memory
   * period, and the start went straight to the fallback.
   */
  reason: "refused" | "remembered";
  /** True the first time a run of this channel falls back in this process. */
  first: boolean;
}

/** A started async run: one Coze holds (polled through its run history), or one the gateway holds. */
export type StartedRun =
  | { kind: "coze"; executeId: string; debugUrl: string | undefined }
  | { kind: "held"; run: HeldRun };

/** Options for {@link createAsyncStarter}. */
export interface AsyncStarterOptions {
  held: HeldRuns;
  /** Milliseconds since some origin. */
  now: () => number;
  /**
   * How long a channel's refusal of `is_async` is remembered, in ms: meanwhile its async runs
   * go straight to the fallback, without a start Coze would refuse. After it, the next start
   * asks Coze again, so a plan upgraded at Coze is used within this time. Default 600 000.
   */
  refusalMemoryMs?: number;
  onFallback?: (event: AsyncFallbackEvent) => void;
}

/**
 * Starts async runs (`is_async`, coze-api.md §5.1) and, where Coze refuses them for the
 * account's plan (6003, §14.1: "a client may fall back to sync run or `stream_run`"), holds
 * the run itself over `stream_run` instead ({@link HeldRuns}). The refusal is remembered per
 * channel for `refusalMemoryMs`. Any other failure of the start is thrown as it is. The start,
 * and a held run's stream for as long as it is open, hold a slot of the channel's gate.
 */
export function createAsyncStarter(
  options: AsyncStarterOptions,
): (target: Target, request: WorkflowRunRequest, tenant: Tenant) => Promise<StartedRun> {
  const { held, now } = options;
  const memoryMs = options.refusalMemoryMs ?? 600_000;
  // Channel name → until when its refusal holds (ms of `now`).
  const refusedUntil = new Map<string, number>();
  const reported = new Set<string>();

  function fellBack(channel: string, reason: AsyncFallbackEvent["reason"]) {
    const first = !reported.has(channel);
    reported.add(channel);
    options.onFallback?.({ channel, reason, first });
  }

  return async (t, request, tenant) => {
    const channel = t.channel.name;
    const { gate } = t.channel;
    const client = t.channel.clientFor(tenant.sessionName);
    const signal = request.signal ?? new AbortController().signal;
    const until = refusedUntil.get(channel);
    if (until !== undefined && now() < until) {
      fellBack(channel, "remembered");
    } else {
      try {
        const started = await gated(gate, signal, () => client.workflows.start(request));
        refusedUntil.delete(channel);
        return { kind: "coze", ...started };
      } catch (err) {
        if (!isCozeError(err, "plan_required")) throw err;
        refusedUntil.set(channel, now() + memoryMs);
        fellBack(channel, "refused");
      }
    }
    const run = await held.hold({
      owner: tenant,
      channel,
      workflowId: t.id,
      signal,
      // `own` aborts with the caller's signal until the run is held: a wait for a slot ends too.
      open: (own) =>
        gatedOpen(gate, own, () => client.workflows.openRun({ ...request, signal: own })),
    });
    return { kind: "held", run };
  };
}
