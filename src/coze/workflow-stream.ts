import { envelopeError, streamEventError } from "./envelope.js";
import { CozeError, safeMessage } from "./errors.js";
import type { StreamResponse } from "./event-stream.js";
import type { SseEvent } from "./sse.js";
import { bool, num, obj, parseJsonObject, parseUsage, str, strMap, type Usage } from "./wire.js";
import { parseInterrupt, type WorkflowInterrupt } from "./workflow-types.js";

/** A typed event of `stream_run` / `stream_resume` (coze-api.md §5.2). */
export type WorkflowEvent =
  | {
      type: "message";
      /** The SSE `id`: a counter from 0, restarting on resume. */
      seq: number;
      content: string;
      contentType: string | undefined;
      nodeTitle: string;
      nodeSeqId: string;
      nodeIsFinish: boolean;
      nodeId: string | undefined;
      nodeExecuteUuid: string | undefined;
      usage: Usage | undefined;
      ext: Record<string, string> | undefined;
    }
  | { type: "interrupt"; seq: number; interrupt: WorkflowInterrupt }
  | { type: "error"; seq: number; code: number; message: string }
  | { type: "ping"; seq: number }
  | {
      type: "done";
      seq: number;
      debugUrl: string | undefined;
      /** The run's execute id, read from `debugUrl`: the stream names it nowhere else. */
      executeId: string | undefined;
    };

/**
 * Turns the SSE events of a workflow stream into {@link WorkflowEvent}s. Ends after `Done`, or at
 * the end of the body after an `Interrupt` (the docs' interrupt example has no `Done`, §5.2). An
 * `Error` event is yielded and then thrown as a {@link CozeError}; a body that ends before any of
 * these throws `unavailable`. Leaves closing the stream to its caller.
 */
export async function* workflowEvents(
  step: string,
  stream: StreamResponse,
): AsyncGenerator<WorkflowEvent, void> {
  let interrupted = false;
  for (;;) {
    const batch: SseEvent[] = [];
    const over = stream.take(batch);
    for (const sse of batch) {
      if (sse.event === undefined) {
        const body = parseJsonObject(step, sse.data);
        throw (
          envelopeError(step, stream.status, body, stream.logId) ??
          new CozeError("protocol", safeMessage("protocol", step), { step, logId: stream.logId })
        );
      }
      const seq = num(sse.id) ?? -1;
      switch (sse.event) {
        case "Message": {
          const d = parseJsonObject(step, sse.data);
          yield {
            type: "message",
            seq,
            content: str(d.content) ?? "",
            contentType: str(d.content_type),
            nodeTitle: str(d.node_title) ?? "",
            nodeSeqId: str(d.node_seq_id) ?? "",
            nodeIsFinish: bool(d.node_is_finish) ?? false,
            nodeId: str(d.node_id),
            nodeExecuteUuid: str(d.node_execute_uuid),
            usage: parseUsage(d.usage),
            ext: strMap(d.ext),
          };
          break;
        }
        case "Interrupt": {
          const d = parseJsonObject(step, sse.data);
          const interrupt = parseInterrupt(d.interrupt_data, str(d.node_title));
          if (!interrupt) throw new CozeError("protocol", safeMessage("protocol", step), { step });
          interrupted = true;
          yield { type: "interrupt", seq, interrupt };
          break;
        }
        case "Error": {
          const d = parseJsonObject(step, sse.data);
          const code = num(d.error_code) ?? 0;
          const message = str(d.error_message) ?? "";
          yield { type: "error", seq, code, message };
          throw streamEventError(step, code, message, stream.logId);
        }
        case "PING":
          yield { type: "ping", seq };
          break;
        case "Done": {
          let debugUrl: string | undefined;
          try {
            debugUrl = str(obj(JSON.parse(sse.data))?.debug_url);
          } catch {
            debugUrl = undefined;
          }
          yield { type: "done", seq, debugUrl, executeId: executeIdOf(debugUrl) };
          return;
        }
        default:
          break;
      }
    }
    if (over) break;
    await stream.wait();
  }
  if (!interrupted) {
    throw new CozeError("unavailable", `${step}: stream ended before the workflow finished`, {
      step,
      logId: stream.logId,
    });
  }
}

/**
 * The `execute_id` query parameter of a run's debug URL (every example in coze-api.md §5.1,
 * §5.6, §14.3 has it): a stream run learns its id no other way. `undefined` unless it is a
 * Coze id (digits).
 */
export function executeIdOf(debugUrl: string | undefined): string | undefined {
  if (debugUrl === undefined || !URL.canParse(debugUrl)) return undefined;
  const id = new URL(debugUrl).searchParams.get("execute_id");
  return id !== null && /^\d{1,32}$/.test(id) ? id : undefined;
}
