import { bool, id, type Json, num, obj, parseUsage, str, type Usage } from "./wire.js";

/**
 * A workflow's output. Coze sends it as JSON text inside the JSON envelope (coze-api.md §5.1):
 * `text` is that text exactly as Coze produced it (decoded from the envelope once, never
 * re-quoted), and `value` is the parsed value when the text is valid JSON.
 */
export interface WorkflowOutput {
  text: string;
  value: unknown;
}

/** An interrupt: the run waits for an answer, resumed through `stream_resume` (§5.2, §5.3). */
export interface WorkflowInterrupt {
  /** Two ids joined by `/`; pass it back to resume. */
  eventId: string;
  /** 2 question node, 5 input node, 6 local plugin, 7 OAuth plugin. */
  type: number;
  /** The question or prompt text. */
  data: string;
  nodeTitle: string | undefined;
  requiredParameters: Json | undefined;
}

/** The result of a synchronous run (`/v1/workflow/run`, §5.1). */
export interface WorkflowRunResult {
  executeId: string | undefined;
  output: WorkflowOutput;
  debugUrl: string | undefined;
  usage: Usage | undefined;
  interrupt: WorkflowInterrupt | undefined;
  logId: string | undefined;
}

/** Run statuses of the run history (§5.4). */
export type WorkflowRunStatus = "running" | "success" | "fail" | "unknown";

/** One run as the run history reports it (§5.4). */
export interface WorkflowRun {
  executeId: string;
  status: WorkflowRunStatus;
  /** The End node's output when the run succeeded; see {@link historyOutput}. */
  output: WorkflowOutput | undefined;
  /** Coze's error code, a string on the wire (`""` when none). */
  errorCode: string | undefined;
  errorMessage: string | undefined;
  debugUrl: string | undefined;
  usage: Usage | undefined;
  /** 0 sync, 1 stream, 2 async. */
  runMode: number | undefined;
  createTime: number | undefined;
  updateTime: number | undefined;
  isOutputTrimmed: boolean;
  interrupt: WorkflowInterrupt | undefined;
  /** node id → node execute uuid, for fetching a trimmed node's whole output (§5.5). */
  nodeExecuteUuids: Record<string, string>;
}

/** Decodes output text once: keeps the text, adds the parsed value when it is JSON. */
export function toOutput(text: string): WorkflowOutput {
  try {
    return { text, value: JSON.parse(text) };
  } catch {
    return { text, value: undefined };
  }
}

/**
 * The run history wraps the End node's output as `{"Output": "<output JSON text>"}` (§5.4), where
 * a sync run answers the output JSON text itself (§5.1). Unwrap that one layer so both paths give
 * callers the same thing; any other shape is passed through as it is.
 */
export function historyOutput(text: string): WorkflowOutput {
  const outer = toOutput(text);
  const o = obj(outer.value);
  if (o && Object.keys(o).length === 1 && typeof o.Output === "string") return toOutput(o.Output);
  return outer;
}

/** Reads `interrupt_data` (§5.1, §5.2). */
export function parseInterrupt(v: unknown, nodeTitle?: string): WorkflowInterrupt | undefined {
  const i = obj(v);
  const eventId = i && id(i.event_id);
  if (!i || eventId === undefined) return undefined;
  return {
    eventId,
    type: num(i.type) ?? 0,
    data: str(i.data) ?? "",
    nodeTitle,
    requiredParameters: obj(i.required_parameters),
  };
}

/** Reads one run-history item. */
export function parseRun(v: unknown): WorkflowRun | undefined {
  const r = obj(v);
  const executeId = r && id(r.execute_id);
  if (!r || executeId === undefined) return undefined;
  const status = (str(r.execute_status) ?? "").toLowerCase();
  const nodes: Record<string, string> = {};
  for (const [nodeId, raw] of Object.entries(obj(r.node_execute_status) ?? {})) {
    const uuid = id(obj(raw)?.node_execute_uuid);
    if (uuid !== undefined) nodes[nodeId] = uuid;
  }
  const output = str(r.output);
  return {
    executeId,
    status: status === "running" || status === "success" || status === "fail" ? status : "unknown",
    output: output === undefined || output === "" ? undefined : historyOutput(output),
    errorCode: id(r.error_code),
    errorMessage: str(r.error_message) || undefined,
    debugUrl: str(r.debug_url) || undefined,
    usage: parseUsage(r.usage),
    runMode: num(r.run_mode),
    createTime: num(r.create_time),
    updateTime: num(r.update_time),
    isOutputTrimmed: bool(r.is_output_trimmed) ?? false,
    interrupt: parseInterrupt(r.interrupt_data),
    nodeExecuteUuids: nodes,
  };
}
