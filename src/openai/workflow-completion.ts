import { create, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import { type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  ResumeWorkflowRequestSchema,
  RunMode,
  RunStatus,
  RunWorkflowRequestSchema,
  WatchWorkflowRequestSchema,
  type WorkflowInterruptSchema,
  type WorkflowProgressSchema,
  type WorkflowResultSchema,
} from "../gen/cozegateway/v1/workflow_pb.js";
import {
  type CoreContext,
  heldGoesOnText,
  heldLostText,
  isHeldRunHandle,
} from "../service/index.js";
import { type CompletionExtras, type OpenAiUsage, usageOf } from "./completion-format.js";
import { checkedFormat } from "./json-output.js";
import { OpenAiError, withExecuteId } from "./openai-error.js";
import { type ErrorHook, runStream, runUnary, type StreamTurn, type Turn } from "./turn.js";
import { lastUserText, outputContent, workflowExt, workflowParameters } from "./workflow-input.js";

type InterruptInit = MessageInitShape<typeof WorkflowInterruptSchema>;
type ResultInit = MessageInitShape<typeof WorkflowResultSchema>;
type ProgressInit = MessageInitShape<typeof WorkflowProgressSchema>;

/** A relayed workflow event, as WatchWorkflow and ResumeWorkflow both send them. */
export type WorkflowEventInit =
  | {
      case: "message";
      value: { content?: string; nodeId?: string; nodeTitle?: string; nodeFinished?: boolean };
    }
  | { case: "interrupt"; value: InterruptInit }
  | { case: "progress"; value: ProgressInit }
  | { case: "result"; value: ResultInit }
  | { case: undefined; value?: undefined };

/** The model's kind, as far as workflows care. */
export type WorkflowKind = "workflow" | "workflow_async";

/** What the door knows of the run a turn is about: its execute id, once known. */
interface RunState {
  executeId: string;
}

/**
 * Issue #4 decision 3: an interrupt ends the turn with the question as content and
 * `interrupt: {event_id, type, question}` at the top level; answering it means sending the
 * answer as the last user message with `event_id` and `interrupt_type`. The question is text
 * to show, never the JSON Coze's `data` may come in (issue 17); what that JSON held comes along
 * in `content_type` and `content` (an input node's field list, structured), and what the node
 * still needs in `required_parameters`, when Coze sent them; `node_title` when Coze named it.
 */
function interruptExtras(i: InterruptInit, executeId: string): CompletionExtras {
  const interrupt = interruptJson(i);
  return executeId ? { execute_id: executeId, interrupt } : { interrupt };
}

/** An interrupt as the REST doors write it: `{event_id, type, question, …}` (see above). */
export function interruptJson(i: InterruptInit): Record<string, unknown> {
  const interrupt: Record<string, unknown> = {
    event_id: i.eventId ?? "",
    type: i.type ?? 0,
    question: i.question ?? "",
  };
  if (i.nodeTitle) interrupt.node_title = i.nodeTitle;
  if (i.contentType) interrupt.content_type = i.contentType;
  if (i.content !== undefined) interrupt.content = toJson(ValueSchema, i.content as Value);
  if (i.requiredParameters !== undefined) interrupt.required_parameters = i.requiredParameters;
  return interrupt;
}

function resultExtras(executeId: string): CompletionExtras {
  return executeId ? { execute_id: executeId } : {};
}

/**
 * The routes a REST caller finds a run by again (issue 16): `GET /v1/workflow_runs/{id}` reads
 * it, `&stream=true` re-attaches to it.
 */
export function reattachHint(executeId: string, model: string, shutdown = false): string {
  const url = `/v1/workflow_runs/${encodeURIComponent(executeId)}?model=${encodeURIComponent(model)}`;
  const read = `read it with GET ${url}, or re-attach with GET ${url}&stream=true`;
  if (!isHeldRunHandle(executeId)) return `the workflow run goes on at Coze: ${read}`;
  return shutdown ? heldLostText : `${heldGoesOnText}: ${read}`;
}

/**
 * Names the run in every error of a turn once its id is known (issue 16): `execute_id` in the
 * body, the `X-Coze-Execute-Id` header, no automatic retry by the SDKs; when the gateway stopped
 * waiting (`still_running`) or shuts down, the message says where to find the run again.
 */
function runErrors(turn: Turn, run: RunState): ErrorHook {
  return (err) => {
    const id = err.body.execute_id ?? run.executeId;
    if (!id) return err;
    const stopping = turn.shutdown?.aborted === true || turn.hardStop?.aborted === true;
    const waited = err.body.code === "still_running";
    const shutdown = !waited && err.status === 503 && stopping;
    const hint = waited || shutdown ? reattachHint(id, turn.request.model, shutdown) : undefined;
    return withExecuteId(err, id, hint);
  };
}

/**
 * The turn with its `response_format` applied: a workflow is not told (it has no prompt), its
 * content is the output's JSON text as it is (never the single string field), and it is checked.
 */
function formatted(turn: Turn): Turn {
  const output = turn.request.jsonOutput;
  return output === undefined ? turn : { ...turn, format: checkedFormat(turn.format, output) };
}

/** The content of a result: the output, as JSON text when the request asked for JSON. */
function contentOf(turn: Turn, r: ResultInit): string {
  if (turn.request.jsonOutput !== undefined && r.outputJson) return r.outputJson;
  return outputContent(r.outputJson, r.output);
}

function resumeRequest(turn: Turn, resume: NonNullable<Turn["request"]["resume"]>) {
  return create(ResumeWorkflowRequestSchema, {
    model: turn.request.model,
    // A remembered interrupt is resumed on the channel its run lives on (interrupt-replies.ts).
    channel: resume.channel ?? "",
    eventId: resume.eventId,
    interruptType: resume.interruptType,
    resumeData: lastUserText(turn.request),
  });
}

/**
 * The events of a turn's run (issue 16: the same core calls whether streamed or not, so both
 * give the same content): `ResumeWorkflow` when the request answers an interrupt; for
 * `workflow-async:` names `RunWorkflow` in async mode (a refused start is still a plain HTTP
 * error; `started` is told the execute id at once), then `WatchWorkflow` attached to the run;
 * else `WatchWorkflow` streaming the run.
 */
async function* runEvents(
  turn: Turn,
  kind: WorkflowKind,
  inputField: string,
  ctx: CoreContext,
  started: (executeId: string) => void,
): AsyncGenerator<{ event?: WorkflowEventInit }> {
  const { request, services } = turn;
  const workflow = services.workflow;
  if (request.resume) {
    yield* workflow.resumeWorkflow(resumeRequest(turn, request.resume), ctx);
    return;
  }
  const model = request.model;
  const parameters = workflowParameters(request, inputField);
  const ext = workflowExt(request);
  if (kind === "workflow") {
    const req = create(WatchWorkflowRequestSchema, { model, parameters, ext });
    yield* workflow.watchWorkflow(req, ctx);
    return;
  }
  const start = create(RunWorkflowRequestSchema, { model, parameters, ext, mode: RunMode.ASYNC });
  const { executeId = "" } = await workflow.runWorkflow(start, ctx);
  started(executeId);
  const watch = create(WatchWorkflowRequestSchema, { model, executeId });
  yield* workflow.watchWorkflow(watch, ctx);
}

/** How a run's events end a turn: the content and the finish's extension fields and usage. */
interface Ending {
  content: string;
  extras: CompletionExtras;
  usage: OpenAiUsage | undefined;
}

/** The ending an interrupt or a result makes, or `undefined` for any other event. */
function endingOf(turn: Turn, event: WorkflowEventInit, run: RunState): Ending | undefined {
  if (event.case === "interrupt") {
    const content = event.value.question ?? "";
    return { content, extras: interruptExtras(event.value, run.executeId), usage: undefined };
  }
  if (event.case === "result") {
    const r = event.value;
    run.executeId = r.executeId || run.executeId;
    return {
      content: contentOf(turn, r),
      extras: resultExtras(run.executeId),
      usage: usageOf(r.usage),
    };
  }
  return undefined;
}

/**
 * A non-stream workflow completion. The content is the run's output (see `outputContent`) or
 * an interrupt's question; `execute_id` and `interrupt` come as top-level extension fields.
 * Node messages are not part of it (a sync run's answer, coze-api.md §5.1, has none either).
 */
export async function workflowCompletion(
  asked: Turn,
  kind: WorkflowKind,
  inputField: string,
): Promise<void> {
  const turn = formatted(asked);
  const run: RunState = { executeId: asked.request.resume?.executeId ?? "" };
  await runUnary(
    turn,
    async (ctx) => {
      if (kind === "workflow" && !turn.request.resume)
        return { json: await syncRun(turn, ctx, inputField, run) };
      const started = (id: string) => {
        run.executeId = id;
      };
      for await (const { event } of runEvents(turn, kind, inputField, ctx, started)) {
        const end = event && endingOf(turn, event, run);
        if (end)
          return {
            json: turn.format.unary({ content: end.content }, "stop", end.usage, end.extras),
          };
      }
      throw cutStream();
    },
    runErrors(turn, run),
  );
}

/** A `workflow:` run in one Coze call (`RunWorkflow`, sync). */
async function syncRun(turn: Turn, ctx: CoreContext, inputField: string, run: RunState) {
  const { request, format } = turn;
  const req = create(RunWorkflowRequestSchema, {
    model: request.model,
    parameters: workflowParameters(request, inputField),
    ext: workflowExt(request),
  });
  const r = await turn.services.workflow.runWorkflow(req, ctx);
  run.executeId = r.executeId ?? "";
  const usage = usageOf(r.usage);
  if (r.status === RunStatus.INTERRUPTED && r.interrupt) {
    const extras = interruptExtras(r.interrupt, run.executeId);
    return format.unary({ content: r.interrupt.question ?? "" }, "stop", usage, extras);
  }
  const content = contentOf(turn, { outputJson: r.outputJson, output: r.output });
  return format.unary({ content }, "stop", usage, resultExtras(run.executeId));
}

/**
 * A streamed workflow completion, with the same content as {@link workflowCompletion} (issue
 * 16): the output, or an interrupt's question, written when the run gives it. Before that, what
 * the run reports is written as SSE comments, which clients skip: a node message as
 * `: node {"node_title","node_id","content"}`, an async run's poll as
 * `: progress {"execute_id","status","polls","elapsed_ms"}`. An async run's execute id comes in
 * the `X-Coze-Execute-Id` header and the first chunk (or `response.created`) as soon as the run
 * started; every error after that names it.
 */
export async function workflowStream(
  asked: Turn,
  kind: WorkflowKind,
  inputField: string,
): Promise<void> {
  const turn = formatted(asked);
  const run: RunState = { executeId: asked.request.resume?.executeId ?? "" };
  await runStream(
    turn,
    async (s) => {
      const started = (id: string) => {
        run.executeId = id;
        if (id) s.fmt.announce({ execute_id: id });
        // Issue #4: "workflow-async streamed: a role chunk at once, heartbeats while polling".
        s.begin();
      };
      await relayRun(turn, s, runEvents(turn, kind, inputField, s.ctx, started), run);
    },
    runErrors(turn, run),
  );
}

/**
 * The error hook of a lookup of run `executeId` the caller named: a refusal (4xx: not its run,
 * a bad request) is left as it is; a failure after that names the run like a turn's.
 */
export function runErrorHook(turn: Turn, executeId: string): ErrorHook {
  const named = runErrors(turn, { executeId });
  return (err) => (err.status < 500 ? err : named(err));
}

/**
 * Streams an attached run again (issue 16, `GET /v1/workflow_runs/{id}?stream=true`): as a
 * streamed `workflow-async:` turn after its start, the execute id in the header and first chunk.
 */
export async function reattachStream(turn: Turn, executeId: string): Promise<void> {
  const run: RunState = { executeId };
  const watch = create(WatchWorkflowRequestSchema, { model: turn.request.model, executeId });
  await runStream(
    turn,
    async (s) => {
      s.fmt.announce({ execute_id: executeId });
      const events = turn.services.workflow.watchWorkflow(watch, s.ctx);
      await relayRun(turn, s, events, run);
    },
    runErrorHook(turn, executeId),
  );
}

/** Writes a run's events as a turn's stream (see {@link workflowStream}). */
async function relayRun(
  turn: Turn,
  s: StreamTurn,
  events: AsyncIterable<{ event?: WorkflowEventInit }>,
  run: RunState,
): Promise<void> {
  for await (const { event } of events) {
    if (s.sse.ended) return;
    if (event === undefined || event.case === undefined) continue;
    s.begin();
    if (event.case === "message" || event.case === "progress") {
      const w = s.write(commentOf(event));
      if (w) await w;
      continue;
    }
    const end = endingOf(turn, event, run);
    if (end) {
      if (end.content !== "") {
        const w = s.write(s.fmt.content(end.content));
        if (w) await w;
      }
      s.finish("stop", end.extras, end.usage);
      return;
    }
  }
  if (!s.sse.ended) throw cutStream();
}

const statusNames: Record<RunStatus, string> = {
  [RunStatus.UNSPECIFIED]: "unknown",
  [RunStatus.RUNNING]: "running",
  [RunStatus.SUCCEEDED]: "succeeded",
  [RunStatus.FAILED]: "failed",
  [RunStatus.INTERRUPTED]: "interrupted",
};

/** A run's status as the REST doors name it. */
export function statusName(status: RunStatus | undefined): string {
  return statusNames[status ?? RunStatus.UNSPECIFIED] ?? "unknown";
}

/** The SSE comment reporting a node message or a poll of a run (never content). */
function commentOf(
  event: Exclude<WorkflowEventInit, { case: "interrupt" | "result" | undefined }>,
) {
  if (event.case === "message") {
    const { nodeTitle = "", nodeId = "", content = "" } = event.value;
    return `: node ${JSON.stringify({ node_title: nodeTitle, node_id: nodeId, content })}\n\n`;
  }
  const p = event.value;
  const progress = {
    execute_id: p.executeId ?? "",
    status: statusName(p.status),
    polls: p.polls ?? 0,
    elapsed_ms: p.elapsedMs ?? 0,
  };
  return `: progress ${JSON.stringify(progress)}\n\n`;
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
