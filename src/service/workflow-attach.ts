import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { CozeError, safeMessage } from "../coze/errors.js";
import type { WorkflowRun } from "../coze/workflow-types.js";
import {
  type GetWorkflowRunResponseSchema,
  RunStatus,
  type WatchWorkflowResponse,
  WatchWorkflowResponseSchema,
} from "../gen/cozegateway/v1/workflow_pb.js";
import { tenantOf } from "./caller.js";
import { usageOf } from "./chat-service.js";
import type { CoreContext } from "./core-context.js";
import type { HeldRun, HeldRuns, HeldStatus } from "./held-runs.js";
import { traceOf } from "./request-context.js";
import type { Target } from "./routing.js";
import type { RunWatchers } from "./run-watchers.js";
import type { Tenant } from "./tenant.js";
import {
  announceRun,
  interruptOf,
  outputFields,
  type RelayEvent,
  resultOf,
  runError,
  statusOf,
} from "./workflow-relay.js";

// WatchWorkflow and GetWorkflowRun on a run that exists: one Coze holds (async, polled through
// its run history) or one the gateway holds (a fallback over stream_run, held-runs.ts).

/** What attaching needs of the service. */
export interface AttachDeps {
  watchers: RunWatchers;
  held: HeldRuns;
  /** Milliseconds since some origin, for the progress events' elapsed time. */
  now: () => number;
}

/** The status of a run as the contract says it: a run waiting on an interrupt is INTERRUPTED. */
export function runStatusOf(run: WorkflowRun): RunStatus {
  return run.interrupt !== undefined && run.status === "running"
    ? RunStatus.INTERRUPTED
    : statusOf[run.status];
}

const heldStatus: Record<HeldStatus, RunStatus> = {
  running: RunStatus.RUNNING,
  success: RunStatus.SUCCEEDED,
  fail: RunStatus.FAILED,
  interrupted: RunStatus.INTERRUPTED,
};

/**
 * Streams a run's progress, then how it ended: its result, the interrupt it waits on, or the
 * error it failed with. `started`: this call started the run, so a progress event says so at
 * once (polls 0) and the first read waits the interval; otherwise the caller re-attaches, and
 * the run is read at once. Every error names the run, a cut watch (shutdown, deadline) as a
 * `canceled` error that does.
 */
export async function* attach(
  deps: AttachDeps,
  t: Target,
  run: { executeId: string } | { held: HeldRun },
  ctx: CoreContext,
  started: boolean,
): AsyncGenerator<WatchWorkflowResponse> {
  const tenant = tenantOf(ctx);
  const since = deps.now();
  const handed = tenant.seal("run", "held" in run ? run.held.id : run.executeId);
  announceRun(ctx, handed);
  const progress = (status: RunStatus, polls: number) =>
    create(WatchWorkflowResponseSchema, {
      event: {
        case: "progress",
        value: {
          executeId: handed,
          status,
          elapsedMs: Math.min(deps.now() - since, 0xffffffff),
          polls,
        },
      },
    });
  const event = (e: RelayEvent) => create(WatchWorkflowResponseSchema, { event: e });
  try {
    // Issue 16: the caller learns the run's id before the first poll.
    if (started) yield progress(RunStatus.RUNNING, 0);
    const { intervalMs, maxPolls } = t.channel.config.polling;
    if ("held" in run) {
      const ticks = deps.held.watch(run.held, ctx.signal, {
        intervalMs,
        maxPolls,
        immediate: !started,
      });
      for await (const tick of ticks) yield progress(heldStatus[tick.run.status], tick.poll);
      yield event(heldEnding(run.held, tenant, handed));
      return;
    }
    // Watchers of one run share its poll loop (issue #6: one poll per run per interval).
    const ticks = deps.watchers.watch(t.channel, t.id, run.executeId, ctx.signal, {
      immediate: !started,
      trace: traceOf(ctx),
    });
    let final: WorkflowRun | undefined;
    for await (const tick of ticks) {
      final = tick.value;
      yield progress(runStatusOf(tick.value), tick.poll);
    }
    if (final?.interrupt !== undefined && final.status === "running") {
      yield event({
        case: "interrupt",
        value: interruptOf(final.interrupt, tenant, "run_interrupt"),
      });
      return;
    }
    yield event({ case: "result", value: resultOf(handed, final) });
  } catch (err) {
    if (ctx.signal.aborted && !(err instanceof CozeError)) {
      const step = "workflow.watch";
      throw new CozeError("canceled", safeMessage("canceled", step), {
        step,
        cause: err,
        executeId: handed,
      });
    }
    throw runError(err, tenant, handed);
  }
}

/**
 * How a held run that left `running` ended, as an event: its result or its interrupt (a
 * streamed one: resumed through `stream_resume`); a failed run throws its error.
 */
export function heldEnding(
  run: HeldRun,
  tenant: Tenant,
  handed: string,
): Extract<RelayEvent, { case: "interrupt" | "result" }> {
  if (run.status === "interrupted" && run.interrupt !== undefined) {
    return { case: "interrupt", value: interruptOf(run.interrupt, tenant, "interrupt") };
  }
  if (run.status === "success") {
    return {
      case: "result",
      value: {
        executeId: handed,
        ...outputFields(run.output),
        debugUrl: run.debugUrl ?? "",
        usage: usageOf(run.usage),
      },
    };
  }
  const step = "workflow.stream";
  throw (run.error ?? new CozeError("failed", safeMessage("failed", step), { step })).withExecuteId(
    handed,
  );
}

type RunInit = MessageInitShape<typeof GetWorkflowRunResponseSchema>;

/** GetWorkflowRun's answer for a run Coze holds, read from its run history. */
export function cozeRunResponse(run: WorkflowRun, tenant: Tenant): RunInit {
  return {
    executeId: tenant.seal("run", run.executeId),
    status: runStatusOf(run),
    ...outputFields(run.status === "success" ? run.output : undefined),
    errorCode: run.errorCode ?? "",
    errorMessage: run.errorMessage ?? "",
    debugUrl: run.debugUrl ?? "",
    usage: usageOf(run.usage),
    createTime: run.createTime === undefined ? undefined : timestampFromMs(run.createTime * 1000),
    updateTime: run.updateTime === undefined ? undefined : timestampFromMs(run.updateTime * 1000),
    interrupt:
      run.interrupt && run.status === "running"
        ? interruptOf(run.interrupt, tenant, "run_interrupt")
        : undefined,
  };
}

/**
 * GetWorkflowRun's answer for a held run, from memory. A failed run's error code and message
 * are Coze's when its `Error` event gave them, else the gateway's own words for what broke.
 */
export function heldRunResponse(run: HeldRun, tenant: Tenant): RunInit {
  const error = run.error;
  return {
    executeId: tenant.seal("run", run.id),
    status: heldStatus[run.status],
    ...outputFields(run.status === "success" ? run.output : undefined),
    errorCode: error?.cozeCode === undefined ? "" : String(error.cozeCode),
    errorMessage: error === undefined ? "" : (error.cozeMessage ?? error.message),
    debugUrl: run.debugUrl ?? "",
    usage: usageOf(run.usage),
    createTime: timestampFromMs(run.createTime),
    updateTime: timestampFromMs(run.updateTime),
    interrupt:
      run.status === "interrupted" && run.interrupt
        ? interruptOf(run.interrupt, tenant, "interrupt")
        : undefined,
  };
}
