import { create } from "@bufbuild/protobuf";
import { GetWorkflowRunRequestSchema } from "../gen/cozegateway/v1/workflow_pb.js";
import { usageOf } from "./completion-format.js";
import { invalidValue, missing } from "./json-checks.js";
import type { ChatCompletionRequest } from "./parse-request.js";
import { runUnary, type Turn } from "./turn.js";
import { interruptJson, reattachStream, runErrorHook, statusName } from "./workflow-completion.js";
import { outputContent } from "./workflow-input.js";

/** The path under which runs are looked up: `GET /v1/workflow_runs/{execute_id}`. */
export const workflowRunsPath = "/v1/workflow_runs/";

/** A validated run lookup. */
export interface RunLookup {
  /** The execute id as the gateway handed it out (bound to the key; the core checks it). */
  executeId: string;
  /** The model route the run was started with. */
  model: string;
  /** `?stream=true`: re-attach as a chat completion stream. */
  stream: boolean;
}

/**
 * Reads `GET /v1/workflow_runs/{execute_id}?model=…[&stream=true]` (issue 16). `model` names
 * the workflow route the run was started with, as for gRPC `GetWorkflowRun`: an execute id does
 * not say which workflow it belongs to. Other query parameters are ignored.
 *
 * @throws OpenAiError 400 naming `execute_id`, `model` or `stream` when missing, given twice or
 *   malformed; an id that is not one the key was handed is the core's 404.
 */
export function parseRunLookup(url: string, rawId: string): RunLookup {
  const query = new URL(url, "http://gateway.invalid").searchParams;
  const once = (name: string) => {
    const all = query.getAll(name);
    if (all.length > 1) throw invalidValue(name, "given more than once.");
    return all[0];
  };
  const model = once("model");
  if (model === undefined || model === "") throw missing("model");
  if (model.length > 256) throw invalidValue("model", "longer than 256 characters.");
  const stream = once("stream");
  if (stream !== undefined && stream !== "true" && stream !== "false") {
    throw invalidValue("stream", "expected true or false.");
  }
  // An empty id would read as "no run" to the core, whose WatchWorkflow then starts one.
  if (rawId === "") throw missing("execute_id");
  let executeId: string;
  try {
    executeId = decodeURIComponent(rawId);
  } catch {
    // Not an id the gateway handed out: the core answers 404 as for any other.
    executeId = "-";
  }
  if (executeId === "") throw missing("execute_id");
  return { executeId, model, stream: stream === "true" };
}

/** The turn request of a lookup: no messages, only the model and whether it streams. */
export function lookupRequest(lookup: RunLookup): ChatCompletionRequest {
  return {
    model: lookup.model,
    messages: [],
    stream: lookup.stream,
    includeUsage: false,
    user: undefined,
    conversationId: undefined,
    parameters: undefined,
    resume: undefined,
  };
}

/**
 * Answers a run lookup (issue 16) over the same core methods as gRPC: `GetWorkflowRun` for a
 * `workflow.run` object, or `WatchWorkflow` attached to the run for `?stream=true`, streamed
 * like a `workflow-async:` chat completion (the execute id in the first chunk, `: progress`
 * comments, the output as content, `execute_id` on the finish chunk, `[DONE]`; a failed run
 * ends with an error event; an interrupted one with its question and `interrupt`). Another
 * key's id, a forged or truncated one is a 404 `not_found`.
 */
export async function answerRunLookup(turn: Turn, lookup: RunLookup): Promise<void> {
  if (lookup.stream) {
    await reattachStream(turn, lookup.executeId);
    return;
  }
  const req = create(GetWorkflowRunRequestSchema, {
    model: lookup.model,
    executeId: lookup.executeId,
  });
  await runUnary(
    turn,
    async (ctx) => {
      const r = await turn.services.workflow.getWorkflowRun(req, ctx);
      const succeeded = statusName(r.status) === "succeeded";
      const seconds = (t: { seconds?: bigint } | undefined) =>
        t?.seconds === undefined ? null : Number(t.seconds);
      const run = {
        object: "workflow.run",
        execute_id: r.executeId,
        model: lookup.model,
        status: statusName(r.status),
        // What a chat completion's content would be (see `outputContent`).
        content: succeeded ? outputContent(r.outputJson, r.output) : null,
        output_json: succeeded ? r.outputJson : null,
        error_code: r.errorCode || null,
        error_message: r.errorMessage || null,
        debug_url: r.debugUrl || null,
        usage: usageOf(r.usage) ?? null,
        created_at: seconds(r.createTime),
        updated_at: seconds(r.updateTime),
        // What an interrupted run waits on; answer it as a completion answers one (issue 17).
        interrupt: r.interrupt ? interruptJson(r.interrupt) : null,
      };
      return { json: JSON.stringify(run) };
    },
    runErrorHook(turn, lookup.executeId),
  );
}
