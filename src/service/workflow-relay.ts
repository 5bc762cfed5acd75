import {
  fromJson,
  type JsonObject,
  type JsonValue,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { CozeError } from "../coze/errors.js";
import type { Usage } from "../coze/wire.js";
import { failedRunError } from "../coze/workflow-reply.js";
import type { WorkflowEvent } from "../coze/workflow-stream.js";
import type {
  WorkflowInterrupt as CozeInterrupt,
  WorkflowOutput,
  WorkflowRun,
} from "../coze/workflow-types.js";
import {
  RunStatus,
  type WorkflowInterruptSchema,
  type WorkflowNodeMessageSchema,
  type WorkflowResultSchema,
} from "../gen/cozegateway/v1/workflow_pb.js";
import { usageOf } from "./chat-service.js";
import type { CoreContext } from "./core-context.js";
import { aboutRun, errorHeaders } from "./errors.js";
import { maxJsonDepth, nestedDeeperThan } from "./json-depth.js";
import type { Tenant } from "./tenant.js";

// The pieces of WorkflowService that turn Coze's runs and events into the contract's: outputs,
// interrupts, handed-out run ids, errors that name their run, and the stream relay.

/**
 * The output as JSON text (always, never re-quoted) plus a structured value when it parses and
 * nests at most {@link maxJsonDepth} levels deep: a deeper value could not be read by protobuf
 * clients (issue #13), and `output_json` carries it whole anyway.
 */
export function outputFields(output: WorkflowOutput | undefined) {
  const value = output?.value;
  return {
    outputJson: output?.text ?? "",
    output:
      value === undefined || nestedDeeperThan(value, maxJsonDepth)
        ? undefined
        : fromJson(ValueSchema, value as JsonValue),
  };
}

/**
 * The interrupt, its event id sealed to the tenant that may resume it, as `kind`: `interrupt`
 * for a streamed one (resumed through `stream_resume`), `run_interrupt` for one in a run's
 * reply or history (resumed through `/v1/workflows/resume`, coze-api.md §14.3). The question is
 * the text to show, never the JSON `data` may come in; the JSON form's content and the
 * required parameters come along structured, when protobuf clients can read them.
 */
export function interruptOf(
  i: CozeInterrupt,
  tenant: Tenant,
  kind: "interrupt" | "run_interrupt",
): MessageInitShape<typeof WorkflowInterruptSchema> {
  const content = i.content;
  const required = i.requiredParameters;
  return {
    eventId: tenant.seal(kind, i.eventId),
    type: i.type,
    question: i.question,
    nodeTitle: i.nodeTitle ?? "",
    contentType: i.contentType ?? "",
    content:
      content === undefined || nestedDeeperThan(content, maxJsonDepth)
        ? undefined
        : fromJson(ValueSchema, content as JsonValue),
    requiredParameters:
      required === undefined || nestedDeeperThan(required, maxJsonDepth - 1)
        ? undefined
        : (required as JsonObject),
  };
}

/** A run's execute id as handed out: sealed to `tenant`; `""` when Coze gave none. */
export function runId(tenant: Tenant, executeId: string | undefined): string {
  return executeId ? tenant.seal("run", executeId) : "";
}

/**
 * What a Coze call about a run threw, naming the run as handed out: `handed`, or the id the
 * Coze error itself carries (a failed sync run's envelope) sealed to `tenant`.
 */
export function runError(err: unknown, tenant: Tenant, handed = ""): unknown {
  if (handed !== "") return aboutRun(err, handed);
  if (err instanceof CozeError && err.executeId) {
    return aboutRun(err, tenant.seal("run", err.executeId));
  }
  return err;
}

/** Names the run in the response headers, as soon as it is known (issue 16). */
export function announceRun(ctx: CoreContext, handed: string): void {
  if (handed !== "") ctx.responseHeader.set(errorHeaders.executeId, handed);
}

export const statusOf: Record<WorkflowRun["status"], RunStatus> = {
  running: RunStatus.RUNNING,
  success: RunStatus.SUCCEEDED,
  fail: RunStatus.FAILED,
  unknown: RunStatus.UNSPECIFIED,
};

/** A relayed workflow event, valid in both WatchWorkflowResponse and ResumeWorkflowResponse. */
export type RelayEvent =
  | { case: "message"; value: MessageInitShape<typeof WorkflowNodeMessageSchema> }
  | { case: "interrupt"; value: MessageInitShape<typeof WorkflowInterruptSchema> }
  | { case: "result"; value: MessageInitShape<typeof WorkflowResultSchema> };

/**
 * Relays a stream_run / stream_resume as contract events: node messages, an interrupt (the
 * last event), and at `Done` the result. The output is the text of the last node's messages
 * (the End node's, coze-api.md §5.2), joined when that node sent several pieces before
 * `node_is_finish`; the execute id is the one the `Done` event's debug URL names. An error
 * that names a run names it as handed out.
 */
export async function* relay(
  events: AsyncIterable<WorkflowEvent>,
  tenant: Tenant,
): AsyncGenerator<RelayEvent, void> {
  try {
    yield* relayEvents(events, tenant);
  } catch (err) {
    throw runError(err, tenant);
  }
}

async function* relayEvents(
  events: AsyncIterable<WorkflowEvent>,
  tenant: Tenant,
): AsyncGenerator<RelayEvent, void> {
  const collected = outputCollector();
  for await (const e of events) {
    if (e.type === "message") {
      collected.add(e);
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
      yield { case: "interrupt", value: interruptOf(e.interrupt, tenant, "interrupt") };
    } else if (e.type === "done") {
      yield {
        case: "result",
        value: {
          executeId: runId(tenant, e.executeId),
          ...outputFields(collected.output),
          debugUrl: e.debugUrl ?? "",
          usage: usageOf(collected.usage),
        },
      };
    }
  }
}

type NodeMessage = Extract<WorkflowEvent, { type: "message" }>;

/**
 * Collects a streamed run's output from its node messages: the text of the node that wrote
 * last (the End node's, coze-api.md §5.2), joined when that node sent several pieces before
 * `node_is_finish`, and that node's usage.
 */
export function outputCollector(): {
  add(e: NodeMessage): void;
  readonly output: WorkflowOutput | undefined;
  readonly usage: Usage | undefined;
} {
  let last: NodeMessage | undefined;
  // The text of the node that wrote last, and whether it said it was finished.
  let text = "";
  let open = false;
  return {
    add(e) {
      const sameNode = open && last !== undefined && nodeOf(last) === nodeOf(e);
      text = sameNode ? text + e.content : e.content;
      open = !e.nodeIsFinish;
      last = e;
    },
    get output() {
      return last && { text, value: tryParse(text) };
    },
    get usage() {
      return last?.usage;
    },
  };
}

/** What tells a node's messages apart: its id, else its title. */
function nodeOf(e: NodeMessage): string {
  return e.nodeId ?? e.nodeTitle;
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The result of an attached run that stopped running; a run that did not succeed throws. */
export function resultOf(executeId: string, run: WorkflowRun | undefined) {
  if (run?.status !== "success") {
    throw failedRunError({ errorCode: run?.errorCode, errorMessage: run?.errorMessage }, executeId);
  }
  return {
    executeId,
    ...outputFields(run.output),
    debugUrl: run.debugUrl ?? "",
    usage: usageOf(run.usage),
  };
}
