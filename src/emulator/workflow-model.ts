import type { WorkflowName } from "./catalog.js";

/** Run status on the wire, capitalised (§5.4). */
export type RunStatus = "Running" | "Success" | "Fail";

/** An interrupt waiting for `stream_resume` or `/v1/workflows/resume` (§5.2, §5.3, §14.3). */
export interface PendingInterrupt {
  eventId: string;
  /** `interrupt_data.data` on the wire: plain text or the JSON form (§14.2). */
  data: string;
  /** 2 = question node, 5 = input node, … (§5.2, §14.2). */
  type: number;
  nodeTitle: string;
  /** What the node still needs (§14.2), when it says. */
  requiredParameters?: Record<string, unknown>;
}

/** One workflow run, whatever the mode. */
export interface WorkflowRun {
  executeId: string;
  workflowId: string;
  workflow: WorkflowName;
  botId: string;
  connectorUid: string;
  /** 0 sync, 1 stream, 2 async (§5.4). */
  runMode: 0 | 1 | 2;
  logid: string;
  createdAt: number;
  updatedAt: number;
  status: RunStatus;
  /** End-node output (the sync run's `data` string) once it succeeded. */
  output?: string;
  errorCode?: number;
  errorMessage?: string;
  interrupt?: PendingInterrupt;
  /** Resumes used; at most 3 (§5.3). */
  resumes: number;
  /** A run that finishes by itself: at a clock time, or on the N-th history read. */
  pending?: { atMs?: number; afterReads?: number; output: string };
  historyReads: number;
  /** `node_execute_uuid` of the End node, for `execute_nodes` (§5.5). */
  endNodeUuid: string;
}

/** Interrupt `event_id` → run; `used` once resumed (an event id resumes once). */
export interface InterruptRef {
  executeId: string;
  used: boolean;
}

/** Fake space id in debug URLs. */
const SPACE_ID = "7390000000000000100";

/** The debug URL of a run, in the documented format (§5.1). */
export function debugUrl(run: Pick<WorkflowRun, "executeId" | "workflowId">, extra = ""): string {
  return `https://www.coze.cn/work_flow?execute_id=${run.executeId}&space_id=${SPACE_ID}&workflow_id=${run.workflowId}${extra}`;
}

/** History `output` above this many bytes is trimmed (§5.5: node output "over 1 MB"). */
export const HISTORY_OUTPUT_LIMIT = 1024 * 1024;

/** Usage figures of a run from the output size: never zero. */
export function runUsage(output: string | undefined): Record<string, number> {
  const output_count = Math.max(1, Math.ceil((output?.length ?? 0) / 4));
  return { input_count: 50, token_count: 50 + output_count, output_count };
}

/** Marks a run successful with `output`. */
export function succeed(run: WorkflowRun, output: string, nowMs: number): void {
  run.status = "Success";
  run.output = output;
  run.pending = undefined;
  run.interrupt = undefined;
  run.updatedAt = nowMs;
}

/** Completes a pending run whose time or read count has come (history reads are lazy). */
export function settle(run: WorkflowRun, nowMs: number): void {
  const p = run.pending;
  if (run.status !== "Running" || !p) return;
  const due =
    p.afterReads !== undefined ? run.historyReads >= p.afterReads : nowMs >= (p.atMs ?? 0);
  if (due) succeed(run, p.output, nowMs);
}

/**
 * The run-history entry (§5.4) with every field py requires and the optional ones too:
 * `error_code` is a string (`""` when fine), times are `create_time`/`update_time` in seconds,
 * `output` is `{"Output": <End output string>}` JSON. An output over
 * {@link HISTORY_OUTPUT_LIMIT} is cut (still valid JSON) and flagged `is_output_trimmed`; the
 * End node's `node_execute_uuid` then serves the whole output (§5.5).
 */
export function historyWire(run: WorkflowRun): Record<string, unknown> {
  let output = "";
  let trimmed = false;
  if (run.status === "Success" && run.output !== undefined) {
    output = JSON.stringify({ Output: run.output });
    if (Buffer.byteLength(output) > HISTORY_OUTPUT_LIMIT) {
      trimmed = true;
      output = JSON.stringify({ Output: run.output.slice(0, HISTORY_OUTPUT_LIMIT / 2) });
    }
  }
  const seconds = (ms: number) => Math.floor(ms / 1000);
  return {
    execute_id: run.executeId,
    execute_status: run.status,
    bot_id: run.botId,
    connector_id: "1024",
    connector_uid: run.connectorUid,
    run_mode: run.runMode,
    logid: run.logid,
    create_time: seconds(run.createdAt),
    update_time: seconds(run.updatedAt),
    output,
    token: "0",
    cost: "0.00000",
    error_code: run.errorCode === undefined ? "" : String(run.errorCode),
    error_message: run.errorMessage ?? "",
    debug_url: debugUrl(run),
    is_output_trimmed: trimmed,
    node_execute_status:
      run.status === "Success"
        ? {
            "900001": {
              node_id: "900001",
              is_finish: true,
              update_time: seconds(run.updatedAt),
              node_execute_uuid: run.endNodeUuid,
            },
          }
        : {},
    interrupt_data: run.interrupt ? interruptWire(run.interrupt) : null,
    usage: runUsage(run.output),
  };
}

/** `interrupt_data` of a run response, history entry or Interrupt event (§5.1, §5.2). */
export function interruptWire(i: PendingInterrupt): Record<string, unknown> {
  const wire: Record<string, unknown> = { data: i.data, event_id: i.eventId, type: i.type };
  if (i.requiredParameters) wire.required_parameters = i.requiredParameters;
  return wire;
}
