import { chunk } from "./chat-model.js";
import { cozeErrorText } from "./coze-error-texts.js";
import {
  ApiError,
  badRequest,
  type Ctx,
  notFound,
  readJson,
  sendData,
  sendError,
  sendJson,
} from "./http-io.js";
import { openSse, type SseStream } from "./sse.js";
import type { EmulatorState } from "./state.js";
import { sleep, waitForClock } from "./timing.js";
import type { TokenInfo } from "./tokens.js";
import {
  debugUrl,
  historyWire,
  interruptWire,
  runUsage,
  settle,
  succeed,
  type WorkflowRun,
} from "./workflow-model.js";
import {
  failRun,
  type InterruptSpec,
  interruptRun,
  interruptSpec,
  type Outcome,
  outcomeFor,
  parseRunRequest,
  startRun,
} from "./workflows.js";

/** A workflow can be resumed at most 3 times (docs:workflow_resume.md, §5.3). */
const MAX_RESUMES = 3;

/**
 * `POST /v1/workflow/run` (§5.1). Sync: waits for the outcome, then answers the top-level `data`
 * string with `debug_url`, `usage` and `execute_id`; an interrupt answers `interrupt_data`; a
 * failure answers a Coze error envelope (HTTP 200, code {@link WORKFLOW_FAILURE}) with
 * `debug_url` and `execute_id`. Async (`is_async:true`): answers the docs' shape
 * `{debug_url, execute_id, msg:""}` without `code` at once (§5.1) and the run progresses behind
 * run history. `is_async` for an account on the free plan (a `free_plan` fault) answers 6003
 * with HTTP 200 and starts nothing (§14.1).
 */
export async function handleRun(state: EmulatorState, ctx: Ctx, token: TokenInfo): Promise<void> {
  const request = parseRunRequest(await readJson(ctx));
  if (request.isAsync && state.faults.freePlan(token.clientId)) {
    throw new ApiError(6003, cozeErrorText(6003));
  }
  const outcome = outcomeFor(request.workflow, request.parameters);
  const run = startRun(state, ctx, token, request, request.isAsync ? 2 : 0);
  if (request.isAsync) {
    applyAsync(state, run, outcome);
    sendJson(ctx, 200, {
      debug_url: debugUrl(run),
      execute_id: run.executeId,
      msg: "",
      detail: { logid: ctx.logid },
    });
    return;
  }
  if (outcome.kind === "fail") {
    failRun(state, run, outcome.code, outcome.message);
    sendError(ctx, outcome.code, outcome.message, 200, {
      debug_url: debugUrl(run),
      execute_id: run.executeId,
    });
    return;
  }
  const base = { code: 0, msg: "", debug_url: debugUrl(run), execute_id: run.executeId };
  if (outcome.kind === "interrupt") {
    const interrupt = interruptRun(state, run, outcome.interrupt);
    sendJson(ctx, 200, {
      ...base,
      data: "",
      interrupt_data: interruptWire(interrupt),
      usage: runUsage(undefined),
      detail: { logid: ctx.logid },
    });
    return;
  }
  if (outcome.kind === "wait") {
    // Sync and stream runs wait on the clock; `polls` only drives async runs (history reads).
    run.pending = { atMs: run.createdAt + outcome.runMs, output: outcome.output };
    if (!(await waitForClock(state.now, run.pending.atMs ?? 0, ctx.signal))) return;
  }
  succeed(run, outcome.output, state.now());
  sendJson(ctx, 200, {
    ...base,
    data: run.output,
    usage: runUsage(run.output),
    detail: { logid: ctx.logid },
  });
}

function applyAsync(state: EmulatorState, run: WorkflowRun, outcome: Outcome): void {
  switch (outcome.kind) {
    case "success":
      succeed(run, outcome.output, state.now());
      return;
    case "fail":
      failRun(state, run, outcome.code, outcome.message);
      return;
    case "interrupt":
      interruptRun(state, run, outcome.interrupt);
      return;
    case "wait":
      run.pending =
        outcome.polls === undefined
          ? { atMs: run.createdAt + outcome.runMs, output: outcome.output }
          : { afterReads: outcome.polls, output: outcome.output };
  }
}

/**
 * `POST /v1/workflow/stream_run` (§5.2): `id:`/`event:`/`data:` frames, ids from 0. Success:
 * Message node chunks, the End message, `Done` `{debug_url}`. Waiting: `PING` `{}` every
 * `timing.pingMs` (§7.4). Failure: `Error` `{error_code:int, error_message}` and the stream ends.
 * Interrupt: a Message, then `Interrupt`, and the stream ends without `Done` like the docs'
 * example (§10.5).
 */
export async function handleStreamRun(
  state: EmulatorState,
  ctx: Ctx,
  token: TokenInfo,
): Promise<void> {
  const request = parseRunRequest(await readJson(ctx));
  const outcome = outcomeFor(request.workflow, request.parameters);
  const run = startRun(state, ctx, token, request, 1);
  const sse = openSse(ctx, "workflow");
  if (outcome.kind === "fail") {
    failRun(state, run, outcome.code, outcome.message);
    if (await sse.send("Error", { error_code: outcome.code, error_message: outcome.message }))
      sse.end();
    return;
  }
  if (outcome.kind === "interrupt") {
    const interrupt = interruptRun(state, run, outcome.interrupt);
    if (!(await sendMessageNode(state, ctx, sse, "Let me ask you something."))) return;
    const data = { interrupt_data: interruptWire(interrupt), node_title: interrupt.nodeTitle };
    if (await sse.send("Interrupt", data)) sse.end();
    return;
  }
  if (outcome.kind === "wait") {
    run.pending = { atMs: run.createdAt + outcome.runMs, output: outcome.output };
    const waited = await waitForClock(state.now, run.pending.atMs ?? 0, ctx.signal, {
      everyMs: state.timing.pingMs,
      onTick: () => sse.send("PING", {}),
    });
    if (!waited) return;
  } else if (outcome.message !== undefined) {
    if (!(await sendMessageNode(state, ctx, sse, outcome.message))) return;
  }
  succeed(run, outcome.output, state.now());
  await finishStream(sse, run);
}

/**
 * `POST /v1/workflow/stream_resume` (§5.3): same SSE as stream_run, ids restart at 0. A known,
 * unused `event_id` of this workflow resumes once; an empty `resume_data` asks the question
 * again (a new event id). Errors before streaming are JSON envelopes (§5.2): 4000 for a
 * missing field, an unknown or used event id, a wrong `interrupt_type`, or a 4th resume.
 */
export async function handleStreamResume(state: EmulatorState, ctx: Ctx): Promise<void> {
  const body = await readJson(ctx);
  const eventId = body.event_id;
  if (typeof eventId !== "string" || eventId === "") throw badRequest("event_id is required");
  if (typeof body.resume_data !== "string") throw badRequest("resume_data must be a string");
  const ref = state.interrupts.get(eventId);
  const run = ref ? state.runs.get(ref.executeId) : undefined;
  if (!ref || ref.used || !run || run.workflowId !== String(body.workflow_id ?? "")) {
    throw badRequest("event_id is not a pending interrupt of this workflow");
  }
  if (Number(body.interrupt_type) !== run.interrupt?.type) {
    throw badRequest(`interrupt_type must be ${run.interrupt?.type}`);
  }
  if (run.resumes >= MAX_RESUMES) {
    throw badRequest(`a workflow run can be resumed at most ${MAX_RESUMES} times`);
  }
  ref.used = true;
  run.resumes += 1;
  const sse = openSse(ctx, "workflow");
  if (body.resume_data === "") {
    const interrupt = interruptRun(state, run, askAgain(run));
    const data = { interrupt_data: interruptWire(interrupt), node_title: interrupt.nodeTitle };
    if (await sse.send("Interrupt", data)) sse.end();
    return;
  }
  succeed(run, JSON.stringify({ output: `You answered: ${body.resume_data}` }), state.now());
  await finishStream(sse, run);
}

/**
 * `POST /v1/workflows/resume` (§14.3), the non-stream resume: the same body as `stream_resume`,
 * all four fields required (4000). An unknown `event_id`, one of another workflow, or one
 * already answered → 4314; a run that finished, or a 4th resume of one run → 4315 (§14.3
 * decision); a wrong `interrupt_type` → 4000. The resume runs as the run did: a sync or stream
 * run answers like `/v1/workflow/run` (the output, or, for an empty `resume_data`, the same
 * question again under a new event id); an async run answers `{execute_id, debug_url}` at once
 * and its run history shows the outcome.
 */
export async function handleResumeRun(state: EmulatorState, ctx: Ctx): Promise<void> {
  const body = await readJson(ctx);
  for (const field of ["workflow_id", "event_id"]) {
    if (typeof body[field] !== "string" || body[field] === "") {
      throw badRequest(`${field} is required`);
    }
  }
  if (typeof body.resume_data !== "string") throw badRequest("resume_data must be a string");
  if (typeof body.interrupt_type !== "number") throw badRequest("interrupt_type is required");
  const ref = state.interrupts.get(body.event_id as string);
  const run = ref ? state.runs.get(ref.executeId) : undefined;
  if (!ref || !run || run.workflowId !== body.workflow_id) {
    throw new ApiError(4314, cozeErrorText(4314));
  }
  if (run.status !== "Running" || run.resumes >= MAX_RESUMES) {
    throw new ApiError(4315, cozeErrorText(4315));
  }
  if (ref.used) throw new ApiError(4314, cozeErrorText(4314));
  if (body.interrupt_type !== run.interrupt?.type) {
    throw badRequest(`interrupt_type must be ${run.interrupt?.type}`);
  }
  ref.used = true;
  run.resumes += 1;
  const base = { code: 0, msg: "", debug_url: debugUrl(run), execute_id: run.executeId };
  const asked = body.resume_data === "" ? interruptRun(state, run, askAgain(run)) : undefined;
  if (!asked)
    succeed(run, JSON.stringify({ output: `You answered: ${body.resume_data}` }), state.now());
  if (run.runMode === 2) {
    sendJson(ctx, 200, { ...base, detail: { logid: ctx.logid } });
    return;
  }
  sendJson(ctx, 200, {
    ...base,
    data: asked ? "" : run.output,
    ...(asked ? { interrupt_data: interruptWire(asked) } : {}),
    usage: runUsage(run.output),
    detail: { logid: ctx.logid },
  });
}

/** The interrupt `run` waits on, to ask again (an empty answer, §14.3 "asks again"). */
function askAgain(run: WorkflowRun): InterruptSpec {
  const { eventId: _, ...spec } = run.interrupt ?? { eventId: "", ...interruptSpec({}) };
  return spec;
}

/**
 * `GET /v1/workflows/{workflow_id}/run_histories/{execute_id}` (§5.4): a one-element array.
 * Every read counts as a poll of `execute_id`.
 */
export function handleHistory(
  state: EmulatorState,
  ctx: Ctx,
  workflowId: string,
  executeId: string,
): void {
  state.stats.poll(executeId);
  const run = state.runs.get(executeId);
  if (!run || run.workflowId !== workflowId) throw notFound("workflow execution not found");
  run.historyReads += 1;
  settle(run, state.now());
  sendData(ctx, [historyWire(run)]);
}

/**
 * `GET .../run_histories/{execute_id}/execute_nodes/{node_execute_uuid}` (§5.5): the whole
 * output of the End node, untrimmed.
 */
export function handleNodeOutput(
  state: EmulatorState,
  ctx: Ctx,
  ids: { workflowId: string; executeId: string; nodeUuid: string },
): void {
  const run = state.runs.get(ids.executeId);
  if (!run || run.workflowId !== ids.workflowId) throw notFound("workflow execution not found");
  settle(run, state.now());
  if (run.status !== "Success" || run.endNodeUuid !== ids.nodeUuid) {
    throw notFound("node execution not found");
  }
  sendData(ctx, { is_finish: true, node_output: run.output });
}

async function sendMessageNode(
  state: EmulatorState,
  ctx: Ctx,
  sse: SseStream,
  text: string,
): Promise<boolean> {
  const pieces = chunk(text);
  for (const [i, content] of pieces.entries()) {
    if (state.timing.deltaMs > 0 && !(await sleep(state.timing.deltaMs, ctx.signal))) return false;
    const sent = await sse.send("Message", {
      content,
      content_type: "text",
      node_is_finish: i === pieces.length - 1,
      node_seq_id: String(i),
      node_title: "Message",
      node_id: "135279",
    });
    if (!sent) return false;
  }
  return true;
}

async function finishStream(sse: SseStream, run: WorkflowRun): Promise<void> {
  const end = {
    content: run.output,
    content_type: "text",
    node_is_finish: true,
    node_seq_id: "0",
    node_title: "End",
    node_id: "900001",
    node_execute_uuid: run.endNodeUuid,
    cost: "0.00",
    token: 0,
    usage: runUsage(run.output),
  };
  if ((await sse.send("Message", end)) && (await sse.send("Done", { debug_url: debugUrl(run) }))) {
    sse.end();
  }
}
