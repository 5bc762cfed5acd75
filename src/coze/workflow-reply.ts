import { CozeError, type CozeErrorCode, codeOfCozeCode, safeMessage } from "./errors.js";
import { id, type Json, obj, parseUsage, str } from "./wire.js";
import {
  parseInterrupt,
  toOutput,
  type WorkflowRun,
  type WorkflowRunResult,
} from "./workflow-types.js";

// How the answers about a run are read: a run or resume reply (§5.1, §14.3), the end of polling
// a run, and the error of a run that did not succeed.

/**
 * Whether polling a run is over: it left `running`, or it waits on an interrupt (the run
 * history's `interrupt_data`, §5.4), which only an answer moves on.
 */
export function runEnded(run: WorkflowRun): boolean {
  return run.status !== "running" || run.interrupt !== undefined;
}

const limitCodes: ReadonlySet<CozeErrorCode> = new Set<CozeErrorCode>([
  "rate_limited",
  "quota_exceeded",
  "balance_insufficient",
  "plan_required",
]);

/**
 * The error of a run that did not succeed, from its history: by Coze's error code when that is
 * a code with a class of its own (a rate limit, quota, balance or plan error, coze-api.md
 * §17.1: "in run history `error_code`"), else `failed`. Names the run by `executeId`, when
 * given (the id as handed out).
 */
export function failedRunError(
  run: Pick<WorkflowRun, "errorCode" | "errorMessage">,
  executeId?: string,
): CozeError {
  const step = "workflow.run";
  const numeric = run.errorCode !== undefined && /^\d+$/.test(run.errorCode);
  const byCode = numeric ? codeOfCozeCode(Number(run.errorCode)) : undefined;
  const code = byCode !== undefined && limitCodes.has(byCode) ? byCode : "failed";
  return new CozeError(code, safeMessage(code, step, run.errorCode), {
    step,
    cozeCode: run.errorCode,
    cozeMessage: run.errorMessage,
    executeId,
  });
}

/**
 * Reads the answer of `/v1/workflow/run` or `/v1/workflows/resume` (§5.1, §14.2, §14.3): the
 * output as a JSON string in `data` next to `debug_url` at the top level, or `interrupt_data`.
 * py's own test mock nests both under `data` (§9); that is accepted too. `allowPending`: an
 * answer with neither but an `execute_id` is a resume that goes on in the background.
 */
export function runReply(
  step: string,
  body: Json,
  logId: string | undefined,
  allowPending: boolean,
): WorkflowRunResult & { pending: boolean } {
  const nested = obj(body.data);
  const top = nested && typeof nested.data === "string" ? nested : body;
  const data = top.data;
  const interrupt = parseInterrupt(top.interrupt_data);
  const executeId = id(top.execute_id);
  const pending = allowPending && interrupt === undefined && executeId !== undefined && !data;
  if (typeof data !== "string" && interrupt === undefined && !pending) {
    throw new CozeError("protocol", safeMessage("protocol", step), { step, logId });
  }
  return {
    executeId,
    output: toOutput(typeof data === "string" && !pending ? data : ""),
    debugUrl: str(top.debug_url) || undefined,
    usage: parseUsage(top.usage),
    interrupt,
    logId,
    pending,
  };
}
