import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  ResumeWorkflowRequestSchema,
  RunMode,
  RunStatus,
  RunWorkflowRequestSchema,
  WatchWorkflowRequestSchema,
  type WorkflowInterruptSchema,
  type WorkflowResultSchema,
} from "../gen/cozegateway/v1/workflow_pb.js";
import { type CompletionExtras, usageOf } from "./completion-format.js";
import { OpenAiError } from "./openai-error.js";
import { runStream, runUnary, type StreamTurn, type Turn } from "./turn.js";
import { lastUserText, outputContent, workflowExt, workflowParameters } from "./workflow-input.js";

type InterruptInit = MessageInitShape<typeof WorkflowInterruptSchema>;
type ResultInit = MessageInitShape<typeof WorkflowResultSchema>;

/** A relayed workflow event, as WatchWorkflow and ResumeWorkflow both send them. */
type WorkflowEventInit =
  | { case: "message"; value: { content?: string; nodeId?: string; nodeTitle?: string } }
  | { case: "interrupt"; value: InterruptInit }
  | { case: "progress"; value: unknown }
  | { case: "result"; value: ResultInit }
  | { case: undefined; value?: undefined };

/**
 * Issue #4 decision 3: an interrupt ends the turn with the question as content and
 * `interrupt: {event_id, type, question}` at the top level; answering it means sending the
 * answer as the last user message with `event_id` and `interrupt_type`.
 */
function interruptExtras(i: InterruptInit, executeId: string | undefined): CompletionExtras {
  const interrupt = { event_id: i.eventId ?? "", type: i.type ?? 0, question: i.question ?? "" };
  return executeId ? { execute_id: executeId, interrupt } : { interrupt };
}

function resultExtras(executeId: string | undefined): CompletionExtras {
  return executeId ? { execute_id: executeId } : {};
}

/** The model's kind, as far as workflows care. */
export type WorkflowKind = "workflow" | "workflow_async";

function resumeRequest(turn: Turn, resume: NonNullable<Turn["request"]["resume"]>) {
  return create(ResumeWorkflowRequestSchema, {
    model: turn.request.model,
    eventId: resume.eventId,
    interruptType: resume.interruptType,
    resumeData: lastUserText(turn.request),
  });
}

/**
 * A non-stream workflow completion: `RunWorkflow` (waiting for the output; `workflow-async:`
 * names start the run and poll it in the service), or `ResumeWorkflow` collected when the
 * request answers an interrupt. The content is the output (see `outputContent`) or the
 * interrupt's question; `execute_id` and `interrupt` come as top-level extension fields.
 */
export async function workflowCompletion(turn: Turn, inputField: string): Promise<void> {
  const { request, services, format } = turn;
  const resume = request.resume;
  if (resume) {
    const req = resumeRequest(turn, resume);
    await runUnary(turn, async (ctx) => {
      for await (const { event } of services.workflow.resumeWorkflow(req, ctx)) {
        if (event?.case === "interrupt") {
          const extras = interruptExtras(event.value, undefined);
          const content = event.value.question ?? "";
          return { json: format.unary({ content }, "stop", undefined, extras) };
        }
        if (event?.case === "result") {
          const r = event.value;
          const content = outputContent(r.outputJson, r.output);
          const extras = resultExtras(r.executeId);
          return { json: format.unary({ content }, "stop", usageOf(r.usage), extras) };
        }
      }
      throw cutStream();
    });
    return;
  }
  const req = create(RunWorkflowRequestSchema, {
    model: request.model,
    parameters: workflowParameters(request, inputField),
    ext: workflowExt(request),
  });
  await runUnary(turn, async (ctx) => {
    const r = await services.workflow.runWorkflow(req, ctx);
    const usage = usageOf(r.usage);
    if (r.status === RunStatus.INTERRUPTED && r.interrupt) {
      const extras = interruptExtras(r.interrupt, r.executeId);
      const content = r.interrupt.question ?? "";
      return { json: format.unary({ content }, "stop", usage, extras) };
    }
    const content = outputContent(r.outputJson, r.output);
    return { json: format.unary({ content }, "stop", usage, resultExtras(r.executeId)) };
  });
}

/**
 * A streamed workflow completion. `workflow:` names stream the run (`WatchWorkflow`): node
 * messages become content chunks as they come, and the output (or an interrupt's question)
 * closes the turn. `workflow-async:` names start the run (`RunWorkflow` in async mode, so a
 * refused start is still a plain HTTP error), send the role chunk at once, then attach to the
 * run (`WatchWorkflow` with the execute id): its progress events are not content, heartbeats
 * keep the connection alive while it is polled, and the output ends the turn. A request with
 * `event_id` streams the resumed run (`ResumeWorkflow`).
 */
export async function workflowStream(
  turn: Turn,
  kind: WorkflowKind,
  inputField: string,
): Promise<void> {
  const { request, services } = turn;
  const workflow = services.workflow;
  const resume = request.resume;
  if (resume) {
    const req = resumeRequest(turn, resume);
    await runStream(turn, (s) => relay(s, workflow.resumeWorkflow(req, s.ctx), undefined));
    return;
  }
  const parameters = workflowParameters(request, inputField);
  const ext = workflowExt(request);
  const model = request.model;
  if (kind === "workflow") {
    const req = create(WatchWorkflowRequestSchema, { model, parameters, ext });
    await runStream(turn, (s) => relay(s, workflow.watchWorkflow(req, s.ctx), undefined));
    return;
  }
  const start = create(RunWorkflowRequestSchema, { model, parameters, ext, mode: RunMode.ASYNC });
  await runStream(turn, async (s) => {
    const { executeId = "" } = await workflow.runWorkflow(start, s.ctx);
    // Issue #4: "workflow-async streamed: a role chunk at once, heartbeats while polling".
    s.begin();
    const watch = create(WatchWorkflowRequestSchema, { model, executeId });
    await relay(s, workflow.watchWorkflow(watch, s.ctx), executeId);
  });
}

/**
 * Relays workflow events as chunks. Node messages are written one event late: the service's
 * result repeats the last node message (the End node's) as the output, so that message is
 * replaced by the output content instead of being written twice. Messages of different nodes,
 * and the output or question after them, are separated by a blank line.
 */
async function relay(
  s: StreamTurn,
  events: AsyncIterable<{ event?: WorkflowEventInit }>,
  executeId: string | undefined,
): Promise<void> {
  let held: string | undefined;
  let heldNode = "";
  let lastNode: string | undefined;
  const emit = async (content: string, node: string) => {
    if (content === "") return;
    const sep = lastNode !== undefined && lastNode !== node ? "\n\n" : "";
    lastNode = node;
    const w = s.write(s.fmt.content(sep + content));
    if (w) await w;
  };
  for await (const { event } of events) {
    if (s.sse.ended) return;
    switch (event?.case) {
      case "message":
        s.begin();
        if (held !== undefined) await emit(held, heldNode);
        held = event.value.content ?? "";
        heldNode = event.value.nodeId || event.value.nodeTitle || "";
        break;
      case "interrupt":
        s.begin();
        if (held !== undefined) await emit(held, heldNode);
        await emit(event.value.question ?? "", "\0question");
        s.finish("stop", interruptExtras(event.value, executeId));
        return;
      case "result": {
        s.begin();
        const r = event.value;
        if (held !== undefined && held !== r.outputJson) await emit(held, heldNode);
        await emit(outputContent(r.outputJson, r.output), "\0output");
        s.finish("stop", resultExtras(r.executeId || executeId), usageOf(r.usage));
        return;
      }
      default:
        // Progress of an attached async run is not content (issue #4 decision 7).
        break;
    }
  }
  if (!s.sse.ended) throw cutStream();
}

/** A workflow stream that ended without a result or an interrupt: never a success. */
function cutStream(): OpenAiError {
  return new OpenAiError(502, {
    message: "workflow: the upstream stream ended before the run finished",
    type: "server_error",
    code: "upstream_error",
    param: null,
  });
}
