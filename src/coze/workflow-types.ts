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

/**
 * An interrupt: the run waits for an answer (coze-api.md §5.2, §14.2), resumed through
 * `stream_resume` (a stream's) or `/v1/workflows/resume` (a run reply's, §14.3).
 */
export interface WorkflowInterrupt {
  /** Two ids joined by `/`; pass it back to resume. */
  eventId: string;
  /**
   * The interrupt type, echoed back as `interrupt_type`. The docs say 2 question node, 5 input
   * node, 6 client-side plugin, 7 OAuth plugin; the spec's enum says 1 local plugin, 2 question,
   * 3 require infos, 4 scene chat, 5 input, 7 OAuth plugin (§14.2): whatever Coze sent.
   */
  type: number;
  /** `interrupt_data.data` exactly as Coze sent it: plain text, or JSON text (§14.2). */
  data: string;
  /** What the run asks, for a person to read: see {@link interruptQuestion}. */
  question: string;
  /** `content_type` of the JSON form of `data`; `undefined` when `data` is plain text. */
  contentType: string | undefined;
  /**
   * `content` of the JSON form of `data`: the value it holds when it is JSON text itself (an
   * input node's field list), else its text; `undefined` when `data` is plain text.
   */
  content: unknown;
  nodeTitle: string | undefined;
  /** What the node still needs: parameter name → `{type, required, ...}` (§13.6). */
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

/** Reads `interrupt_data` (§5.1, §5.2, §14.2). */
export function parseInterrupt(v: unknown, nodeTitle?: string): WorkflowInterrupt | undefined {
  const i = obj(v);
  const eventId = i && id(i.event_id);
  if (!i || eventId === undefined) return undefined;
  const data = str(i.data) ?? "";
  const requiredParameters = obj(i.required_parameters);
  const form = jsonForm(data);
  return {
    eventId,
    type: num(i.type) ?? 0,
    data,
    question: interruptQuestion(form, data, requiredParameters),
    contentType: form?.contentType,
    content: form?.content,
    nodeTitle,
    requiredParameters,
  };
}

/** `data` as the documented JSON form `{"content_type": …, "content": …}`, if it is one. */
function jsonForm(
  data: string,
): { contentType: string; text: string; content: unknown } | undefined {
  const o = obj(tryJson(data));
  if (!o || (typeof o.content_type !== "string" && o.content === undefined)) return undefined;
  const text = typeof o.content === "string" ? o.content : JSON.stringify(o.content ?? "");
  const inner = typeof o.content === "string" ? tryJson(o.content) : o.content;
  return {
    contentType: str(o.content_type) ?? "",
    text,
    // Only a JSON object or array counts as structured: `"5"` or `"true"` is text to show.
    content: typeof inner === "object" && inner !== null ? inner : text,
  };
}

/**
 * The question an interrupt asks, never the JSON it came in (§14.2): plain-text `data` as it is;
 * of the JSON form, its `content` when that is text, its `question` when it is an object with
 * one, or, for an input node's field list (the §14.3 example) or any other structure, a request
 * for the fields it names (`Please provide: img (image)`), from `required_parameters` first.
 */
export function interruptQuestion(
  form: ReturnType<typeof jsonForm>,
  data: string,
  requiredParameters: Json | undefined,
): string {
  if (form === undefined) return data !== "" ? data : askFor(requiredParameters, undefined);
  const c = form.content;
  if (typeof c === "string") return c !== "" ? c : askFor(requiredParameters, undefined);
  const question = str(obj(c)?.question);
  if (question) return question;
  return askFor(requiredParameters, c) || form.text;
}

/** `Please provide: a (string), b (image, optional)` from the parameters or a field list. */
function askFor(required: Json | undefined, fields: unknown): string {
  const named: [string, Json | undefined][] = required
    ? Object.entries(required).map(([name, p]) => [name, obj(p)])
    : Array.isArray(fields)
      ? fields.flatMap((f) => {
          const o = obj(f);
          const name = o && str(o.name);
          return name ? [[name, o] as [string, Json]] : [];
        })
      : [];
  if (named.length === 0) return "";
  const parts = named.map(([name, p]) => {
    const type = str(p?.type);
    const notes = [type, p?.required === false ? "optional" : undefined].filter(Boolean);
    return notes.length > 0 ? `${name} (${notes.join(", ")})` : name;
  });
  return `Please provide: ${parts.join(", ")}`;
}

function tryJson(text: string): unknown {
  if (text === "" || (text[0] !== "{" && text[0] !== "[" && text[0] !== '"')) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
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
