import { RunStatus } from "../gen/cozegateway/v1/workflow_pb.js";
import { gated, gatedEvents } from "./channel-gate.js";
import type { Channel } from "./channels.js";
import { usageOf } from "./chat-service.js";
import { notFound } from "./errors.js";
import type { Tenant } from "./tenant.js";
import {
  interruptOf,
  outputFields,
  type RelayEvent,
  relay,
  runError,
  runId,
} from "./workflow-relay.js";

// Answering an interrupt (coze-api.md §5.3, §14.3), for ResumeWorkflow (a stream) and
// ResumeWorkflowRun (one reply) alike: the interrupt's id says which Coze endpoint answers it.

/** An interrupt to answer, as the caller sent it. */
export interface ResumeAsk {
  workflowId: string;
  /** The event id as handed out. */
  eventId: string;
  resumeData: string;
  interruptType: number;
  signal: AbortSignal;
  trace: { readonly cozeLogIds: string[] } | undefined;
}

/**
 * The Coze event id behind a handed-out interrupt id, and which endpoint resumes it: a streamed
 * interrupt's through `stream_resume`, a run reply's (`run_interrupt`) through
 * `/v1/workflows/resume` (§14.3). A raw Coze id (keys with raw ids allowed) is taken for a
 * streamed one, as before the reply's kind existed.
 *
 * @throws GatewayError `not_found` naming `event_id` for an id not handed to this key.
 */
export function openInterrupt(
  tenant: Tenant,
  handle: string,
): { eventId: string; streamed: boolean } {
  const streamed = tenant.open("interrupt", handle);
  if (streamed !== undefined) return { eventId: streamed, streamed: true };
  const reply = tenant.open("run_interrupt", handle);
  if (reply !== undefined) return { eventId: reply, streamed: false };
  throw notFound("event_id", "event_id: no interrupt with this id");
}

/**
 * Answers an interrupt and yields what follows as contract events: for a streamed interrupt
 * the rest of the stream (node messages, then a result or the next interrupt); for a run
 * reply's, the outcome of `/v1/workflows/resume`: a result or the next interrupt. A resume that
 * goes on in the background (the run was async, §14.3) is polled to its end first (the
 * channel's polling). The resume call holds a slot of the channel's gate, as every call to Coze.
 */
export async function* resumeEvents(
  channel: Channel,
  tenant: Tenant,
  ask: ResumeAsk,
): AsyncGenerator<RelayEvent, void> {
  const { eventId, streamed } = openInterrupt(tenant, ask.eventId);
  const client = channel.clientFor(tenant.sessionName);
  const req = {
    workflowId: ask.workflowId,
    eventId,
    resumeData: ask.resumeData,
    interruptType: ask.interruptType,
    signal: ask.signal,
    trace: ask.trace,
  };
  if (streamed) {
    yield* relay(
      gatedEvents(channel.gate, ask.signal, () => client.workflows.resume(req)),
      tenant,
    );
    return;
  }
  const reply = await gated(channel.gate, ask.signal, () => client.workflows.resumeRun(req)).catch(
    (err: unknown) => {
      throw runError(err, tenant);
    },
  );
  const handed = runId(tenant, reply.executeId);
  if (reply.interrupt) {
    yield { case: "interrupt", value: interruptOf(reply.interrupt, tenant, "run_interrupt") };
    return;
  }
  if (!reply.pending) {
    yield {
      case: "result",
      value: {
        executeId: handed,
        ...outputFields(reply.output),
        debugUrl: reply.debugUrl ?? "",
        usage: usageOf(reply.usage),
      },
    };
    return;
  }
  const done = await client.workflows
    .wait({
      workflowId: ask.workflowId,
      executeId: reply.executeId ?? "",
      signal: ask.signal,
      trace: ask.trace,
    })
    .catch((err: unknown) => {
      throw runError(err, tenant, handed);
    });
  if (done.interrupt) {
    yield { case: "interrupt", value: interruptOf(done.interrupt, tenant, "run_interrupt") };
    return;
  }
  yield {
    case: "result",
    value: {
      executeId: handed,
      ...outputFields(done.output),
      debugUrl: done.debugUrl ?? "",
      usage: usageOf(done.usage),
    },
  };
}

/**
 * ResumeWorkflowRun's answer: the outcome {@link resumeEvents} ends with, as one reply (node
 * messages are not part of it, as in RunWorkflow's).
 */
export async function resumeOutcome(events: AsyncIterable<RelayEvent>) {
  for await (const e of events) {
    if (e.case === "result") {
      const { executeId = "", outputJson = "", output, debugUrl = "", usage } = e.value;
      return { executeId, status: RunStatus.SUCCEEDED, outputJson, output, debugUrl, usage };
    }
    if (e.case === "interrupt") return { status: RunStatus.INTERRUPTED, interrupt: e.value };
  }
  return undefined;
}
