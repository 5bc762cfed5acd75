import { randomUUID } from "node:crypto";
import { type WorkflowName, workflowName } from "./catalog.js";
import { optionalId, optionalMap, unset } from "./chat-input.js";
import { cozeErrorText } from "./coze-error-texts.js";
import { badRequest, type Ctx, notFound } from "./http-io.js";
import { newId } from "./ids.js";
import { type EmulatorState, remember } from "./state.js";
import type { TokenInfo } from "./tokens.js";
import type { PendingInterrupt, WorkflowRun } from "./workflow-model.js";

/** What a scripted workflow does with its parameters. */
export type Outcome =
  | { kind: "success"; output: string; message?: string }
  | { kind: "wait"; runMs: number; polls?: number; output: string }
  | { kind: "fail"; code: number; message: string }
  | { kind: "interrupt"; interrupt: InterruptSpec };

/** What an interrupt sends (§5.2, §14.2), without its event id. */
export type InterruptSpec = Omit<PendingInterrupt, "eventId">;

/**
 * The interrupt types the reference lists: the docs' 2, 5, 6, 7 and the spec's 1, 2, 3, 4, 5,
 * 7 (§14.2).
 */
export const INTERRUPT_TYPES: readonly number[] = [1, 2, 3, 4, 5, 6, 7];

/** The §14.3 example's input node: its `data` content and `required_parameters`. */
const INPUT_FIELDS = '[{"type":"string","name":"img","required":true,"assistType":2}]';

/**
 * The interrupt of the `interrupt` workflow for `parameters.interrupt_type` (default 2) in
 * `parameters.data_shape`: `text` (default) sends `data` as plain text, `json` as the
 * documented JSON form `{"content_type":"text","content":…}` (§14.2). What each type asks is
 * ours (the sources give the shape only); type 5 is the §14.3 example, whose plain-text form
 * has an empty `data` like the docs' stream example (§5.2).
 */
export function interruptSpec(parameters: Record<string, unknown>): InterruptSpec {
  const type = parameters.interrupt_type ?? 2;
  if (typeof type !== "number" || !INTERRUPT_TYPES.includes(type)) {
    throw badRequest(`interrupt_type must be one of ${INTERRUPT_TYPES.join(", ")}`);
  }
  const shape = parameters.data_shape ?? "text";
  if (shape !== "text" && shape !== "json") throw badRequest("data_shape must be text or json");
  const asks: Record<number, [string, string, Record<string, unknown>?]> = {
    1: ["Local plugin", "Run get_location on your device and send its result."],
    2: ["Question", "Which city?"],
    3: [
      "Require infos",
      "Which city, and which date?",
      { city: { type: "string", required: true }, date: { type: "string", required: false } },
    ],
    4: ["Scene chat", "What would you like to do next?"],
    5: ["Input", shape === "json" ? INPUT_FIELDS : "", { img: { required: true, type: "image" } }],
    6: ["Client plugin", "Run the client-side plugin get_location and send its result."],
    7: ["OAuth plugin", "Authorize the plugin, then send the authorization code."],
  };
  const [nodeTitle, text, requiredParameters] = asks[type] as [
    string,
    string,
    Record<string, unknown>?,
  ];
  const data = shape === "json" ? JSON.stringify({ content_type: "text", content: text }) : text;
  return requiredParameters
    ? { type, data, nodeTitle, requiredParameters }
    : { type, data, nodeTitle };
}

/**
 * Failure of the failing workflow: 720702017 is a workflow-runtime code seen on the wire
 * (`{"error_code":720702017,...}` in a public SSE test fixture). The message is ours.
 */
export const WORKFLOW_FAILURE = {
  code: 720702017,
  message: "An error occurred while the workflow was running: the Code node raised an exception.",
};

/** Default output size of the large workflow: 1.5 MiB, over the 1 MB history limit (§5.5). */
const DEFAULT_LARGE = 1.5 * 1024 * 1024;
const MAX_LARGE = 16 * 1024 * 1024;
/** Most arrays the large workflow nests its output in. */
const MAX_DEPTH = 100_000;

/** The outcome of workflow `name` for `parameters` (see `catalog.workflows`). */
export function outcomeFor(name: WorkflowName, parameters: Record<string, unknown>): Outcome {
  const input = parameters.input ?? "";
  const spoken = typeof input === "string" ? input : JSON.stringify(input);
  switch (name) {
    case "echo":
    case "chatflow":
      return { kind: "success", output: echoOutput(parameters), message: `You said: ${spoken}` };
    case "slowAsync": {
      const runMs = nonNegative(parameters.run_ms) ?? 4000;
      const polls = nonNegative(parameters.polls);
      const output = echoOutput(parameters);
      return polls === undefined
        ? { kind: "wait", runMs, output }
        : { kind: "wait", runMs, polls, output };
    }
    case "interrupt":
      return { kind: "interrupt", interrupt: interruptSpec(parameters) };
    case "failing": {
      // `error_code`: fail with that Coze code instead (a limit or plan error, §17.1).
      const code = nonNegative(parameters.error_code);
      return code === undefined || code === 0
        ? { kind: "fail", ...WORKFLOW_FAILURE }
        : { kind: "fail", code, message: cozeErrorText(code) };
    }
    case "large": {
      const size = nonNegative(parameters.size_bytes) ?? DEFAULT_LARGE;
      if (size > MAX_LARGE) throw badRequest(`size_bytes must be at most ${MAX_LARGE}`);
      const depth = nonNegative(parameters.depth) ?? 0;
      if (depth > MAX_DEPTH) throw badRequest(`depth must be at most ${MAX_DEPTH}`);
      const output = largeOutput(size);
      return { kind: "success", output: "[".repeat(depth) + output + "]".repeat(depth) };
    }
  }
}

/** `{"output": input}` when `input` is the only parameter, else the parameters come along. */
function echoOutput(parameters: Record<string, unknown>): string {
  const input = parameters.input ?? "";
  const keys = Object.keys(parameters);
  const only = keys.length === 1 && keys[0] === "input";
  return JSON.stringify(only ? { output: input } : { output: input, parameters });
}

/** Large outputs by size, shared by every run of that size (runs keep their output). */
const largeOutputs = new Map<number, string>();

function largeOutput(size: number): string {
  let output = largeOutputs.get(size);
  if (output === undefined) {
    output = JSON.stringify({ output: "x".repeat(size) });
    remember(largeOutputs, size, output, 4);
  }
  return output;
}

function nonNegative(value: unknown): number | undefined {
  const n = typeof value === "string" && value !== "" ? Number(value) : value;
  return typeof n === "number" && Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
}

/** A validated run request (`/v1/workflow/run` and `stream_run`, §5.1). */
export interface RunRequest {
  workflowId: string;
  workflow: WorkflowName;
  parameters: Record<string, unknown>;
  botId: string;
  isAsync: boolean;
  ext: Record<string, unknown>;
}

/**
 * Validates a run body: `workflow_id` required (4000) and known (4200), not both `bot_id` and
 * `app_id` (4000, docs:workflow_stream_run.md:14). `parameters` is an object; a string holding a
 * JSON object is accepted too, since the docs table calls it "JSON-serialized" (§9).
 */
export function parseRunRequest(body: Record<string, unknown>): RunRequest {
  const workflowId = optionalId(body.workflow_id);
  if (!workflowId) throw badRequest("workflow_id is required");
  const workflow = workflowName(workflowId);
  if (!workflow) throw notFound(`workflow ${workflowId} not found or not published`);
  const botId = optionalId(body.bot_id);
  if (botId && optionalId(body.app_id)) throw badRequest("bot_id and app_id cannot both be set");
  let parameters: unknown = body.parameters;
  if (typeof parameters === "string" && parameters !== "") {
    try {
      parameters = JSON.parse(parameters);
    } catch {
      throw badRequest("parameters is not a JSON object");
    }
  }
  return {
    workflowId,
    workflow,
    parameters: optionalMap(parameters, "parameters"),
    botId: botId ?? "",
    isAsync: body.is_async === true,
    ext: optionalMap(body.ext, "ext"),
  };
}

/**
 * Registers a new run (status Running) and counts it. Runs are not isolated by the token's
 * `session_name`: coze-api.md §12.2 puts conversations, messages, chats and variables under
 * `(app or account, session_name)` and says nothing of workflow runs, so any valid token reads
 * a run by its ids, as before. A chatflow's conversation is isolated (it is a conversation).
 */
export function startRun(
  state: EmulatorState,
  ctx: Ctx,
  token: TokenInfo,
  request: RunRequest,
  runMode: WorkflowRun["runMode"],
): WorkflowRun {
  const now = state.now();
  const userId = request.ext.user_id;
  const run: WorkflowRun = {
    executeId: newId(),
    workflowId: request.workflowId,
    workflow: request.workflow,
    botId: request.botId,
    connectorUid: unset(userId) ? token.clientId : String(userId),
    runMode,
    logid: ctx.logid,
    createdAt: now,
    updatedAt: now,
    status: "Running",
    resumes: 0,
    historyReads: 0,
    endNodeUuid: randomUUID(),
  };
  remember(state.runs, run.executeId, run);
  state.stats.workflowRunStarted();
  return run;
}

/** Puts `run` on hold at an interrupt; its event id can be resumed once (§5.3, §14.3). */
export function interruptRun(
  state: EmulatorState,
  run: WorkflowRun,
  spec: InterruptSpec,
): PendingInterrupt {
  const interrupt: PendingInterrupt = { eventId: `${newId()}/${newId()}`, ...spec };
  run.interrupt = interrupt;
  run.updatedAt = state.now();
  remember(state.interrupts, interrupt.eventId, { executeId: run.executeId, used: false });
  return interrupt;
}

/** Marks `run` failed with a numeric code (sent as a string in history, §5.4). */
export function failRun(
  state: EmulatorState,
  run: WorkflowRun,
  code: number,
  message: string,
): void {
  run.status = "Fail";
  run.errorCode = code;
  run.errorMessage = message;
  run.updatedAt = state.now();
}
