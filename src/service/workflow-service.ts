import { create, fromJson, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { CozeError, safeMessage } from "../coze/errors.js";
import type { WorkflowEvent } from "../coze/workflow-stream.js";
import type {
  WorkflowInterrupt as CozeInterrupt,
  WorkflowOutput,
  WorkflowRun,
} from "../coze/workflow-types.js";
import {
  ResumeWorkflowResponseSchema,
  RunMode,
  RunStatus,
  type WatchWorkflowResponse,
  WatchWorkflowResponseSchema,
  type WorkflowInterruptSchema,
  type WorkflowNodeMessageSchema,
  type WorkflowResultSchema,
  type WorkflowService,
} from "../gen/cozegateway/v1/workflow_pb.js";
import { callerOf, tenantOf } from "./caller.js";
import { gated, gatedEvents } from "./channel-gate.js";
import { opened, usageOf } from "./chat-service.js";
import type { CoreContext, CoreImpl } from "./core-context.js";
import { channelHeader, invalidArgument } from "./errors.js";
import { onFirstChannel, openOnFirstChannel } from "./failover.js";
import { checkJsonDepth, maxJsonDepth, nestedDeeperThan } from "./json-depth.js";
import { noteUsage, traceOf } from "./request-context.js";
import type { Router, Target } from "./routing.js";
import { createRunWatchers, type RunWatchers } from "./run-watchers.js";
import type { Tenant } from "./tenant.js";

/** Options for {@link createWorkflowService}. */
export interface WorkflowServiceOptions {
  router: Router;
  /** Milliseconds since some origin, for the progress events' elapsed time. Default `Date.now`. */
  now?: () => number;
  /** Shared poll loops of attached runs; default a registry of this service's own. */
  watchers?: RunWatchers;
}

/**
 * The output as JSON text (always, never re-quoted) plus a structured value when it parses and
 * nests at most {@link maxJsonDepth} levels deep: a deeper value could not be read by protobuf
 * clients (issue #13), and `output_json` carries it whole anyway.
 */
function outputFields(output: WorkflowOutput | undefined) {
  const value = output?.value;
  return {
    outputJson: output?.text ?? "",
    output:
      value === undefined || nestedDeeperThan(value, maxJsonDepth)
        ? undefined
        : fromJson(ValueSchema, value as JsonValue),
  };
}

/** The interrupt, its event id sealed to the tenant that may resume it. */
function interruptOf(
  i: CozeInterrupt,
  tenant: Tenant,
): MessageInitShape<typeof WorkflowInterruptSchema> {
  return {
    eventId: tenant.seal("interrupt", i.eventId),
    type: i.type,
    question: i.data,
    nodeTitle: i.nodeTitle ?? "",
  };
}

/** A run's execute id as handed out: sealed to `tenant`; `""` when Coze gave none. */
function runId(tenant: Tenant, executeId: string | undefined): string {
  return executeId ? tenant.seal("run", executeId) : "";
}

const statusOf: Record<WorkflowRun["status"], RunStatus> = {
  running: RunStatus.RUNNING,
  success: RunStatus.SUCCEEDED,
  fail: RunStatus.FAILED,
  unknown: RunStatus.UNSPECIFIED,
};

/** A relayed workflow event, valid in both WatchWorkflowResponse and ResumeWorkflowResponse. */
type RelayEvent =
  | { case: "message"; value: MessageInitShape<typeof WorkflowNodeMessageSchema> }
  | { case: "interrupt"; value: MessageInitShape<typeof WorkflowInterruptSchema> }
  | { case: "result"; value: MessageInitShape<typeof WorkflowResultSchema> };

/**
 * Relays a stream_run / stream_resume as contract events: node messages, an interrupt (the
 * last event), and at `Done` the result, whose output is the last node message (the End node's,
 * coze-api.md §5.2), whose usage the request used.
 */
async function* relay(
  events: AsyncIterable<WorkflowEvent>,
  tenant: Tenant,
  ctx: CoreContext,
): AsyncGenerator<RelayEvent, void> {
  let last: Extract<WorkflowEvent, { type: "message" }> | undefined;
  for await (const e of events) {
    if (e.type === "message") {
      last = e;
      yield {
        case: "message",
        value: {
          nodeTitle: e.nodeTitle,
          nodeId: e.nodeId ?? "",
          content: e.content,
          nodeFinished: e.nodeIsFinish,
          nodeSeqId: e.nodeSeqId,
        },
      };
    } else if (e.type === "interrupt") {
      yield { case: "interrupt", value: interruptOf(e.interrupt, tenant) };
    } else if (e.type === "done") {
      noteUsage(ctx, last?.usage);
      const output = last && { text: last.content, value: tryParse(last.content) };
      yield {
        case: "result",
        value: { ...outputFields(output), debugUrl: e.debugUrl ?? "", usage: usageOf(last?.usage) },
      };
    }
  }
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
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

  /** Watches a run; `started` when this request started it (and so used what it reports). */
  async function* attach(
    t: Target,
    executeId: string,
    ctx: CoreContext,
    started: boolean,
  ): AsyncGenerator<WatchWorkflowResponse> {
    const since = now();
    const handed = runId(tenantOf(ctx), executeId);
    // Watchers of one run share its poll loop (issue #6: one poll per run per interval).
    const ticks = watchers.watch(t.channel, t.id, executeId, ctx.signal);
    let final: WorkflowRun | undefined;
    for await (const tick of ticks) {
      final = tick.value;
      yield create(WatchWorkflowResponseSchema, {
        event: {
          case: "progress",
          value: {
            executeId: handed,
            status: statusOf[tick.value.status],
            elapsedMs: Math.min(now() - since, 0xffffffff),
            polls: tick.poll,
          },
        },
      });
    }
    const result = resultOf(handed, final);
    if (started) noteUsage(ctx, final?.usage);
    yield create(WatchWorkflowResponseSchema, { event: { case: "result", value: result } });
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
        if (mode === RunMode.ASYNC) {
          return {
            executeId: runId(tenant, started.executeId),
            status: RunStatus.RUNNING,
            debugUrl: started.debugUrl ?? "",
          };
        }
        const done = await used.channel.clientFor(tenant.sessionName).workflows.wait({
          workflowId: used.id,
          executeId: started.executeId,
          signal: ctx.signal,
          trace: traceOf(ctx),
        });
        noteUsage(ctx, done.usage);
        return {
          executeId: runId(tenant, done.executeId),
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
      );
      ctx.responseHeader.set(channelHeader, used.channel.name);
      noteUsage(ctx, result.usage);
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
      );
      ctx.responseHeader.set(channelHeader, used.channel.name);
      for await (const e of relay(events, tenant, ctx)) {
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
      for await (const e of relay(events, tenant, ctx)) {
        yield create(ResumeWorkflowResponseSchema, { event: e });
      }
    },

    async getWorkflowRun(req, ctx) {
      const t = target(req, ctx, true);
      if (req.executeId === "") throw invalidArgument("execute_id", "is required");
      const tenant = tenantOf(ctx);
      const executeId = opened(tenant, "run", "execute_id", req.executeId);
      const run = await gated(t.channel.gate, ctx.signal, () =>
        t.channel.clientFor(tenant.sessionName).workflows.getRun({
          workflowId: t.id,
          executeId,
          signal: ctx.signal,
          trace: traceOf(ctx),
        }),
      );
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

/** The result of an attached run that stopped running; a run that did not succeed throws. */
function resultOf(executeId: string, run: WorkflowRun | undefined) {
  if (run?.status !== "success") {
    const step = "workflow.run";
    throw new CozeError("failed", safeMessage("failed", step, run?.errorCode), {
      step,
      cozeCode: run?.errorCode,
      cozeMessage: run?.errorMessage,
    });
  }
  return {
    executeId,
    ...outputFields(run.output),
    debugUrl: run.debugUrl ?? "",
    usage: usageOf(run.usage),
  };
}
