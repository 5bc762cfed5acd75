import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { CozeError, safeMessage } from "../coze/errors.js";
import type { WorkflowRun } from "../coze/workflow-types.js";
import {
  ResumeWorkflowResponseSchema,
  RunMode,
  RunStatus,
  type WatchWorkflowResponse,
  WatchWorkflowResponseSchema,
  type WorkflowService,
} from "../gen/cozegateway/v1/workflow_pb.js";
import { callerOf, tenantOf } from "./caller.js";
import { gated, gatedEvents } from "./channel-gate.js";
import { opened, usageOf } from "./chat-service.js";
import type { CoreContext, CoreImpl } from "./core-context.js";
import { channelHeader, invalidArgument } from "./errors.js";
import { onFirstChannel, openOnFirstChannel } from "./failover.js";
import { checkJsonDepth } from "./json-depth.js";
import { traceOf } from "./request-context.js";
import type { Router, Target } from "./routing.js";
import { createRunWatchers, type RunWatchers } from "./run-watchers.js";
import {
  announceRun,
  interruptOf,
  outputFields,
  relay,
  resultOf,
  runError,
  runId,
  statusOf,
} from "./workflow-relay.js";

/** Options for {@link createWorkflowService}. */
export interface WorkflowServiceOptions {
  router: Router;
  /** Milliseconds since some origin, for the progress events' elapsed time. Default `Date.now`. */
  now?: () => number;
  /** Shared poll loops of attached runs; default a registry of this service's own. */
  watchers?: RunWatchers;
}

/** The WorkflowService implementation. */
export function createWorkflowService(
  options: WorkflowServiceOptions,
): CoreImpl<typeof WorkflowService> {
  const { router } = options;
  const now = options.now ?? Date.now;
  const watchers = options.watchers ?? createRunWatchers();

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

  function runRequest(
    t: Target,
    req: {
      parameters?: Record<string, unknown>;
      botId: string;
      appId: string;
      ext: Record<string, string>;
      workflowVersion: string;
    },
    ctx: CoreContext,
  ) {
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

  /**
   * Streams an async run's progress, then its result. `started`: the run was started by this
   * call, so a progress event says so at once (polls 0) and the first poll waits the interval;
   * otherwise the caller re-attaches, and the run is read at once. Every error names the run,
   * a cut watch (shutdown, deadline) as a `canceled` error that does.
   */
  async function* attach(
    t: Target,
    executeId: string,
    ctx: CoreContext,
    started: boolean,
  ): AsyncGenerator<WatchWorkflowResponse> {
    const since = now();
    const handed = runId(tenantOf(ctx), executeId);
    announceRun(ctx, handed);
    const progress = (status: RunStatus, polls: number) =>
      create(WatchWorkflowResponseSchema, {
        event: {
          case: "progress",
          value: {
            executeId: handed,
            status,
            elapsedMs: Math.min(now() - since, 0xffffffff),
            polls,
          },
        },
      });
    try {
      // Issue 16: the caller learns the run's id before the first poll.
      if (started) yield progress(RunStatus.RUNNING, 0);
      // Watchers of one run share its poll loop (issue #6: one poll per run per interval).
      const ticks = watchers.watch(t.channel, t.id, executeId, ctx.signal, {
        immediate: !started,
        trace: traceOf(ctx),
      });
      let final: WorkflowRun | undefined;
      for await (const tick of ticks) {
        final = tick.value;
        yield progress(statusOf[tick.value.status], tick.poll);
      }
      yield create(WatchWorkflowResponseSchema, {
        event: { case: "result", value: resultOf(handed, final) },
      });
    } catch (err) {
      if (ctx.signal.aborted && !(err instanceof CozeError)) {
        const step = "workflow.watch";
        throw new CozeError("canceled", safeMessage("canceled", step), {
          step,
          cause: err,
          executeId: handed,
        });
      }
      throw runError(err, tenantOf(ctx), handed);
    }
  }

  function checkRunFields(req: { botId: string; appId: string; parameters?: unknown }) {
    if (req.botId !== "" && req.appId !== "") {
      // Coze answers 4000 for both (coze-api.md §5.1); say so before calling it.
      throw invalidArgument("bot_id", "cannot be combined with app_id");
    }
    checkJsonDepth("parameters", req.parameters);
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
        // Failover covers the start only: once a channel accepted the run, it is polled there.
        const { value: started, target: used } = await onFirstChannel(t, (c) =>
          gated(c.channel.gate, ctx.signal, () =>
            c.channel.clientFor(tenant.sessionName).workflows.start(runRequest(c, req, ctx)),
          ),
        );
        ctx.responseHeader.set(channelHeader, used.channel.name);
        const handed = runId(tenant, started.executeId);
        announceRun(ctx, handed);
        if (mode === RunMode.ASYNC) {
          return { executeId: handed, status: RunStatus.RUNNING, debugUrl: started.debugUrl ?? "" };
        }
        const done = await used.channel
          .clientFor(tenant.sessionName)
          .workflows.wait({
            workflowId: used.id,
            executeId: started.executeId,
            signal: ctx.signal,
            trace: traceOf(ctx),
          })
          .catch((err: unknown) => {
            throw runError(err, tenant, handed);
          });
        return {
          executeId: handed,
          status: RunStatus.SUCCEEDED,
          ...outputFields(done.output),
          debugUrl: done.debugUrl ?? "",
          usage: usageOf(done.usage),
        };
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
        interrupt: result.interrupt && interruptOf(result.interrupt, tenant),
      };
    },

    async *watchWorkflow(req, ctx) {
      const t = target(req, ctx, req.executeId !== "");
      const tenant = tenantOf(ctx);
      if (req.executeId !== "") {
        const executeId = opened(tenant, "run", "execute_id", req.executeId);
        ctx.responseHeader.set(channelHeader, t.channel.name);
        yield* attach(t, executeId, ctx, false);
        return;
      }
      checkRunFields(req);
      if (t.kind === "workflow_async") {
        const { value: started, target: used } = await onFirstChannel(t, (c) =>
          gated(c.channel.gate, ctx.signal, () =>
            c.channel.clientFor(tenant.sessionName).workflows.start(runRequest(c, req, ctx)),
          ),
        );
        ctx.responseHeader.set(channelHeader, used.channel.name);
        yield* attach(used, started.executeId, ctx, true);
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
      const eventId = opened(tenant, "interrupt", "event_id", req.eventId);
      ctx.responseHeader.set(channelHeader, t.channel.name);
      const events = gatedEvents(t.channel.gate, ctx.signal, () =>
        t.channel.clientFor(tenant.sessionName).workflows.resume({
          workflowId: t.id,
          eventId,
          resumeData: req.resumeData,
          interruptType: req.interruptType,
          signal: ctx.signal,
          trace: traceOf(ctx),
        }),
      );
      for await (const e of relay(events, tenant)) {
        yield create(ResumeWorkflowResponseSchema, { event: e });
      }
    },

    async getWorkflowRun(req, ctx) {
      const t = target(req, ctx, true);
      if (req.executeId === "") throw invalidArgument("execute_id", "is required");
      const tenant = tenantOf(ctx);
      const executeId = opened(tenant, "run", "execute_id", req.executeId);
      announceRun(ctx, req.executeId);
      const run = await gated(t.channel.gate, ctx.signal, () =>
        t.channel.clientFor(tenant.sessionName).workflows.getRun({
          workflowId: t.id,
          executeId,
          signal: ctx.signal,
          trace: traceOf(ctx),
        }),
      ).catch((err: unknown) => {
        throw runError(err, tenant, req.executeId);
      });
      return {
        executeId: runId(tenant, run.executeId),
        status: statusOf[run.status],
        ...outputFields(run.status === "success" ? run.output : undefined),
        errorCode: run.errorCode ?? "",
        errorMessage: run.errorMessage ?? "",
        debugUrl: run.debugUrl ?? "",
        usage: usageOf(run.usage),
        createTime:
          run.createTime === undefined ? undefined : timestampFromMs(run.createTime * 1000),
        updateTime:
          run.updateTime === undefined ? undefined : timestampFromMs(run.updateTime * 1000),
      };
    },
  };
}
