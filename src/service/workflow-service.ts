import { create } from "@bufbuild/protobuf";
import { type Clock, systemClock } from "../coze/clock.js";
import { CozeError, safeMessage } from "../coze/errors.js";
import type { WorkflowRunRequest } from "../coze/workflow.js";
import {
  ResumeWorkflowResponseSchema,
  RunMode,
  RunStatus,
  WatchWorkflowResponseSchema,
  type WorkflowService,
} from "../gen/cozegateway/v1/workflow_pb.js";
import { type AsyncFallbackEvent, createAsyncStarter, type StartedRun } from "./async-fallback.js";
import { callerOf, tenantOf } from "./caller.js";
import { gated, gatedEvents } from "./channel-gate.js";
import { opened, usageOf } from "./chat-service.js";
import type { CoreContext, CoreImpl } from "./core-context.js";
import { channelHeader, invalidArgument, notFound } from "./errors.js";
import { onFirstChannel, openOnFirstChannel } from "./failover.js";
import { createHeldRuns, type HeldRun, type HeldRuns, isHeldRunId } from "./held-runs.js";
import { checkJsonDepth } from "./json-depth.js";
import { traceOf } from "./request-context.js";
import type { Router, Target } from "./routing.js";
import { createRunWatchers, type RunWatchers } from "./run-watchers.js";
import type { Tenant } from "./tenant.js";
import { attach, cozeRunResponse, heldEnding, heldRunResponse } from "./workflow-attach.js";
import {
  announceRun,
  interruptOf,
  outputFields,
  relay,
  runError,
  runId,
} from "./workflow-relay.js";
import { resumeEvents, resumeOutcome } from "./workflow-resume.js";

/** Options for {@link createWorkflowService}. */
export interface WorkflowServiceOptions {
  router: Router;
  /** Milliseconds since some origin, for the progress events' elapsed time. Default `Date.now`. */
  now?: () => number;
  /** Shared poll loops of attached runs; default a registry of this service's own. */
  watchers?: RunWatchers;
  /** Where held runs wait and read the time. Default the system clock. */
  clock?: Clock;
  /** The runs the gateway holds itself; default a registry of this service's own. */
  held?: HeldRuns;
  /** How long a channel's refusal of `is_async` is remembered, in ms. Default 600 000. */
  asyncRefusalMemoryMs?: number;
  /** Told each time an async run falls back to a held run (see `async-fallback.ts`). */
  onAsyncFallback?: (event: AsyncFallbackEvent) => void;
}

type RunFields = {
  parameters?: Record<string, unknown>;
  botId: string;
  appId: string;
  ext: Record<string, string>;
  workflowVersion: string;
};

/**
 * The WorkflowService implementation. Async runs start with `is_async`; on a channel whose plan
 * refuses that (coze-api.md §14.1), the gateway holds the run itself over `stream_run` behind
 * the same API (`async-fallback.ts`, `held-runs.ts`).
 */
export function createWorkflowService(
  options: WorkflowServiceOptions,
): CoreImpl<typeof WorkflowService> {
  const { router } = options;
  const now = options.now ?? Date.now;
  const watchers = options.watchers ?? createRunWatchers();
  const clock = options.clock ?? systemClock;
  const held = options.held ?? createHeldRuns({ clock });
  const startAsync = createAsyncStarter({
    held,
    now: clock.now,
    refusalMemoryMs: options.asyncRefusalMemoryMs,
    onFallback: options.onAsyncFallback,
  });
  const deps = { watchers, held, now };

  /** Resolves the workflow; `pinned` for follow-ups on a run that lives on one channel. */
  function target(
    req: { model: string; channel: string; workflowId: string },
    ctx: CoreContext,
    pinned: boolean,
  ): Target {
    const t = router.resolve(
      req,
      { field: "workflow_id", id: req.workflowId, kind: "workflow" },
      callerOf(ctx),
      { pinned },
    );
    if (t.kind === "bot" || t.kind === "chatflow") {
      throw invalidArgument("model", `"${t.model}" is not a workflow: call ChatService`);
    }
    return t;
  }

  function runRequest(t: Target, req: RunFields, ctx: CoreContext): WorkflowRunRequest {
    return {
      workflowId: t.id,
      parameters: req.parameters ?? {},
      botId: req.botId || undefined,
      appId: req.appId || undefined,
      ext: Object.keys(req.ext).length > 0 ? req.ext : undefined,
      workflowVersion: req.workflowVersion || undefined,
      signal: ctx.signal,
      trace: traceOf(ctx),
    };
  }

  function checkRunFields(req: { botId: string; appId: string; parameters?: unknown }) {
    if (req.botId !== "" && req.appId !== "") {
      // Coze answers 4000 for both (coze-api.md §5.1); say so before calling it.
      throw invalidArgument("bot_id", "cannot be combined with app_id");
    }
    checkJsonDepth("parameters", req.parameters);
  }

  /**
   * Starts an async run on the first channel that takes it (failover covers the start only:
   * once a channel accepted the run, it is watched there), names the channel and the run.
   */
  async function start(t: Target, req: RunFields, ctx: CoreContext) {
    const tenant = tenantOf(ctx);
    const { value: started, target: used } = await onFirstChannel(t, (c) =>
      startAsync(c, runRequest(c, req, ctx), tenant),
    );
    ctx.responseHeader.set(channelHeader, used.channel.name);
    const handed = runId(tenant, started.kind === "held" ? started.run.id : started.executeId);
    announceRun(ctx, handed);
    return { started, used, handed };
  }

  /**
   * The run behind a handed-out execute id on target `t`: a held run when the id has a held
   * run's form (only its own key reads it, and only with its workflow), else Coze's id.
   */
  function runOf(
    t: Target,
    tenant: Tenant,
    handle: string,
  ): { executeId: string } | { held: HeldRun } {
    const executeId = opened(tenant, "run", "execute_id", handle);
    if (!isHeldRunId(executeId)) return { executeId };
    const run = held.get(tenant, executeId);
    if (run === undefined || run.workflowId !== t.id || run.channel !== t.channel.name) {
      // Coze never makes such an id: it was held by a gateway process, which forgets its runs
      // when it stops (or an hour after they ended).
      throw notFound(
        "execute_id",
        "execute_id: no workflow run with this id (a run the gateway held itself is lost when the gateway restarts)",
      );
    }
    return { held: run };
  }

  /** RunWorkflow's answer once a held run left `running` (or still RUNNING after max_polls). */
  async function awaitHeld(t: Target, run: HeldRun, ctx: CoreContext, handed: string) {
    const { intervalMs, maxPolls } = t.channel.config.polling;
    for await (const _ of held.watch(run, ctx.signal, { intervalMs, maxPolls })) {
      // Each read is a tick of the same bound as polling a run: `still_running` after max_polls.
    }
    const end = heldEnding(run, tenantOf(ctx), handed);
    if (end.case === "interrupt") {
      return { executeId: handed, status: RunStatus.INTERRUPTED, interrupt: end.value };
    }
    const { outputJson, output, debugUrl, usage } = end.value;
    return { executeId: handed, status: RunStatus.SUCCEEDED, outputJson, output, debugUrl, usage };
  }

  return {
    async runWorkflow(req, ctx) {
      const t = target(req, ctx, false);
      checkRunFields(req);
      const tenant = tenantOf(ctx);
      const mode =
        req.mode === RunMode.UNSPECIFIED
          ? t.kind === "workflow_async"
            ? RunMode.ASYNC_WAIT
            : RunMode.SYNC
          : req.mode;
      if (mode === RunMode.ASYNC || mode === RunMode.ASYNC_WAIT) {
        const { started, used, handed } = await start(t, req, ctx);
        if (mode === RunMode.ASYNC) {
          const debugUrl = started.kind === "coze" ? (started.debugUrl ?? "") : "";
          return { executeId: handed, status: RunStatus.RUNNING, debugUrl };
        }
        return await waitFor(used, started, ctx, handed).catch((err: unknown) => {
          throw runError(err, tenant, handed);
        });
      }
      const { value: result, target: used } = await onFirstChannel(t, (c) =>
        gated(c.channel.gate, ctx.signal, () =>
          c.channel.clientFor(tenant.sessionName).workflows.run(runRequest(c, req, ctx)),
        ),
      ).catch((err: unknown) => {
        throw runError(err, tenant);
      });
      ctx.responseHeader.set(channelHeader, used.channel.name);
      announceRun(ctx, runId(tenant, result.executeId));
      return {
        executeId: runId(tenant, result.executeId),
        status: result.interrupt ? RunStatus.INTERRUPTED : RunStatus.SUCCEEDED,
        ...outputFields(result.interrupt ? undefined : result.output),
        debugUrl: result.debugUrl ?? "",
        usage: usageOf(result.usage),
        interrupt: result.interrupt && interruptOf(result.interrupt, tenant, "run_interrupt"),
      };
    },

    async *watchWorkflow(req, ctx) {
      const t = target(req, ctx, req.executeId !== "");
      const tenant = tenantOf(ctx);
      if (req.executeId !== "") {
        const run = runOf(t, tenant, req.executeId);
        ctx.responseHeader.set(channelHeader, t.channel.name);
        yield* attach(deps, t, run, ctx, false);
        return;
      }
      checkRunFields(req);
      if (t.kind === "workflow_async") {
        const { started, used } = await start(t, req, ctx);
        const run = started.kind === "held" ? { held: started.run } : started;
        yield* attach(deps, used, run, ctx, true);
        return;
      }
      const { events, target: used } = await openOnFirstChannel(t, (c) =>
        gatedEvents(c.channel.gate, ctx.signal, () =>
          c.channel.clientFor(tenant.sessionName).workflows.stream(runRequest(c, req, ctx)),
        ),
      ).catch((err: unknown) => {
        throw runError(err, tenant);
      });
      ctx.responseHeader.set(channelHeader, used.channel.name);
      for await (const e of relay(events, tenant)) {
        yield create(WatchWorkflowResponseSchema, { event: e });
      }
    },

    async *resumeWorkflow(req, ctx) {
      const t = target(req, ctx, true);
      if (req.eventId === "") throw invalidArgument("event_id", "is required");
      const tenant = tenantOf(ctx);
      ctx.responseHeader.set(channelHeader, t.channel.name);
      const events = resumeEvents(t.channel, tenant, {
        ...req,
        workflowId: t.id,
        signal: ctx.signal,
        trace: traceOf(ctx),
      });
      for await (const e of events) {
        yield create(ResumeWorkflowResponseSchema, { event: e });
      }
    },

    async resumeWorkflowRun(req, ctx) {
      const t = target(req, ctx, true);
      if (req.eventId === "") throw invalidArgument("event_id", "is required");
      const tenant = tenantOf(ctx);
      ctx.responseHeader.set(channelHeader, t.channel.name);
      const outcome = await resumeOutcome(
        resumeEvents(t.channel, tenant, {
          ...req,
          workflowId: t.id,
          signal: ctx.signal,
          trace: traceOf(ctx),
        }),
      );
      if (outcome === undefined) {
        const step = "workflow.resume";
        throw new CozeError("protocol", safeMessage("protocol", step), { step });
      }
      if (outcome.executeId) announceRun(ctx, outcome.executeId);
      return outcome;
    },

    async getWorkflowRun(req, ctx) {
      const t = target(req, ctx, true);
      if (req.executeId === "") throw invalidArgument("execute_id", "is required");
      const tenant = tenantOf(ctx);
      const run = runOf(t, tenant, req.executeId);
      announceRun(ctx, req.executeId);
      if ("held" in run) return heldRunResponse(run.held, tenant);
      const read = await gated(t.channel.gate, ctx.signal, () =>
        t.channel.clientFor(tenant.sessionName).workflows.getRun({
          workflowId: t.id,
          executeId: run.executeId,
          signal: ctx.signal,
          trace: traceOf(ctx),
        }),
      ).catch((err: unknown) => {
        throw runError(err, tenant, req.executeId);
      });
      return cozeRunResponse(read, tenant);
    },
  };

  /** RUN_MODE_ASYNC_WAIT: the started run's outcome, polled (Coze's) or awaited (held). */
  async function waitFor(used: Target, started: StartedRun, ctx: CoreContext, handed: string) {
    if (started.kind === "held") return awaitHeld(used, started.run, ctx, handed);
    const tenant = tenantOf(ctx);
    const done = await used.channel.clientFor(tenant.sessionName).workflows.wait({
      workflowId: used.id,
      executeId: started.executeId,
      signal: ctx.signal,
      trace: traceOf(ctx),
    });
    if (done.interrupt) {
      return {
        executeId: handed,
        status: RunStatus.INTERRUPTED,
        interrupt: interruptOf(done.interrupt, tenant, "run_interrupt"),
      };
    }
    return {
      executeId: handed,
      status: RunStatus.SUCCEEDED,
      ...outputFields(done.output),
      debugUrl: done.debugUrl ?? "",
      usage: usageOf(done.usage),
    };
  }
}
