import type { JsonObject } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  type ResumeWorkflowResponse,
  RunStatus,
  type WatchWorkflowResponse,
  type WorkflowInterrupt,
  type WorkflowService,
} from "../../gen/cozegateway/v1/workflow_pb.js";
import { byId, describeError, element, isCanceled } from "./dom.js";

/** How a request names its workflow: a model name, or a bare Coze workflow id. */
type Target = { model: string } | { workflowId: string };

/** An event of a watched or resumed run. */
type RunEvent = WatchWorkflowResponse["event"] | ResumeWorkflowResponse["event"];

/**
 * Wires the Workflow panel: Run starts `WorkflowService.WatchWorkflow` for a model name or a
 * workflow id with JSON parameters and lists its events as they arrive (node messages, progress,
 * an interrupt, the output). An interrupt shows an answer box that calls `ResumeWorkflow` and
 * lists the rest of the run. Stop aborts the call; errors show their Connect code.
 */
export function createWorkflowPanel(client: Client<typeof WorkflowService>): void {
  const form = byId("workflow-form", HTMLFormElement);
  const target = byId("workflow-target", HTMLInputElement);
  const params = byId("workflow-params", HTMLTextAreaElement);
  const run = byId("workflow-run", HTMLButtonElement);
  const stop = byId("workflow-stop", HTMLButtonElement);
  const error = byId("workflow-error", HTMLParagraphElement);
  const resumeForm = byId("resume-form", HTMLFormElement);
  const question = byId("resume-question", HTMLLabelElement);
  const answer = byId("resume-answer", HTMLInputElement);
  const resumeSend = byId("resume-send", HTMLButtonElement);
  const events = createEventList(byId("workflow-events", HTMLOListElement));
  let running: AbortController | undefined;
  let pending: { target: Target; interrupt: WorkflowInterrupt } | undefined;

  const setBusy = (busy: boolean) => {
    run.disabled = busy;
    resumeSend.disabled = busy;
    stop.disabled = !busy;
    form.setAttribute("aria-busy", String(busy));
  };

  /** Runs one call and lists its events; at most one call at a time. */
  async function follow(
    start: (signal: AbortSignal) => AsyncIterable<{ event: RunEvent }>,
    to: Target,
  ): Promise<void> {
    const controller = new AbortController();
    running = controller;
    setBusy(true);
    try {
      for await (const res of start(controller.signal)) {
        events.add(res.event);
        if (res.event.case === "interrupt") {
          pending = { target: to, interrupt: res.event.value };
          question.textContent = `${res.event.value.question || "The workflow asks for input"} (your answer)`;
          answer.value = "";
          resumeForm.hidden = false;
        }
      }
    } catch (err) {
      if (isCanceled(err, controller.signal)) events.note("Stopped.");
      else error.textContent = describeError(err);
    } finally {
      running = undefined;
      setBusy(false);
    }
    if (!resumeForm.hidden) answer.focus();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (running !== undefined) return;
    error.textContent = "";
    let parameters: JsonObject;
    try {
      parameters = parseParameters(params.value);
    } catch (err) {
      error.textContent = (err as Error).message;
      return;
    }
    const to = parseTarget(target.value);
    events.clear();
    pending = undefined;
    resumeForm.hidden = true;
    void follow((signal) => client.watchWorkflow({ ...to, parameters }, { signal }), to);
  });

  resumeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const waiting = pending;
    if (running !== undefined || waiting === undefined) return;
    error.textContent = "";
    const text = answer.value;
    pending = undefined;
    resumeForm.hidden = true;
    events.answered(text);
    void follow(
      (signal) =>
        client.resumeWorkflow(
          {
            ...waiting.target,
            eventId: waiting.interrupt.eventId,
            resumeData: text,
            interruptType: waiting.interrupt.type,
          },
          { signal },
        ),
      waiting.target,
    );
  });

  stop.addEventListener("click", () => running?.abort());
}

/** A bare id (digits) is a Coze workflow id; anything else a model name. */
function parseTarget(text: string): Target {
  const value = text.trim();
  return /^\d+$/.test(value) ? { workflowId: value } : { model: value };
}

/**
 * The workflow parameters typed in: a JSON object; blank means none.
 *
 * @throws Error saying what is wrong, for the page to show.
 */
function parseParameters(text: string): JsonObject {
  if (text.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`Parameters are not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error('Parameters must be a JSON object, such as {"input": "hello"}.');
  }
  return value as JsonObject;
}

/** The list of a run's events. Consecutive messages of one node grow one item. */
function createEventList(list: HTMLOListElement) {
  let openNode: { key: string; content: HTMLElement } | undefined;
  let progress: HTMLElement | undefined;

  const item = (kind: string, who: string) => {
    const li = element("li", `event event-${kind}`);
    li.append(element("span", "who", who));
    list.append(li);
    openNode = undefined;
    progress = undefined;
    return li;
  };

  return {
    clear(): void {
      list.replaceChildren();
      openNode = undefined;
      progress = undefined;
    },
    add(event: RunEvent): void {
      switch (event.case) {
        case "message": {
          const m = event.value;
          const key = `${m.nodeId}\u0000${m.nodeTitle}`;
          if (openNode?.key !== key) {
            const li = item("message", `Node · ${m.nodeTitle || m.nodeId || "message"}`);
            const content = element("div", "content");
            li.append(content);
            openNode = { key, content };
          }
          openNode.content.append(m.content);
          if (m.nodeFinished) openNode = undefined;
          break;
        }
        case "progress": {
          const p = event.value;
          const status = (RunStatus[p.status] ?? "unknown").toLowerCase();
          const text = `${status} · poll ${p.polls} · ${(p.elapsedMs / 1000).toFixed(1)} s`;
          if (progress === undefined) {
            const li = item("progress", "Progress");
            progress = element("div", "content");
            li.append(progress);
          }
          progress.textContent = text;
          break;
        }
        case "interrupt": {
          const i = event.value;
          const li = item("interrupt", `Interrupt · ${i.nodeTitle || "question"}`);
          li.append(element("div", "content", i.question));
          break;
        }
        case "result": {
          const r = event.value;
          const li = item("result", "Output");
          li.append(element("pre", "output", pretty(r.outputJson)));
          const tokens = r.usage?.tokenCount;
          if (tokens !== undefined) li.append(element("div", "meta", `${tokens} tokens`));
          break;
        }
        default:
          break;
      }
    },
    answered(text: string): void {
      item("answer", "You answered").append(element("div", "content", text));
    },
    note(text: string): void {
      item("note", "Note").append(element("div", "content", text));
    },
  };
}

/** JSON text indented for reading; other text as it is. */
function pretty(json: string): string {
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return json;
  }
}
