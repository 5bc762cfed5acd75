import { describe, expect, it } from "vitest";
import { CozeError } from "../coze/errors.js";
import type { WorkflowEvent } from "../coze/workflow-stream.js";
import { aboutRun, GatewayError } from "./errors.js";
import { createTenant } from "./tenant.js";
import { relay, runError } from "./workflow-relay.js";

const tenant = createTenant(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
const message = (content: string, node: string, finished: boolean): WorkflowEvent => ({
  type: "message",
  seq: 0,
  content,
  contentType: "text",
  nodeTitle: node,
  nodeSeqId: "0",
  nodeIsFinish: finished,
  nodeId: node,
  nodeExecuteUuid: undefined,
  usage: undefined,
  ext: undefined,
});
const done: WorkflowEvent = {
  type: "done",
  seq: 9,
  debugUrl: "https://www.coze.cn/work_flow?execute_id=7400000000000000001",
  executeId: "7400000000000000001",
};

async function resultOf(events: WorkflowEvent[]) {
  async function* source() {
    yield* events;
  }
  const out = [];
  for await (const e of relay(source(), tenant)) out.push(e);
  const last = out.at(-1);
  return last?.case === "result" ? last.value : undefined;
}

describe("relay", () => {
  it("gives the End node's whole text as the output when it came in pieces", async () => {
    const r = await resultOf([
      message("You said: hi", "Message", true),
      message('{"output":', "End", false),
      message('"hi"}', "End", true),
      done,
    ]);
    expect(r?.outputJson).toBe('{"output":"hi"}');
    // The run's id, from the Done event, bound to the tenant.
    expect(tenant.open("run", r?.executeId ?? "")).toBe("7400000000000000001");
  });

  it("gives the last node's message when each node sent one", async () => {
    const r = await resultOf([message("a", "M", true), message("b", "M", true), done]);
    expect(r?.outputJson).toBe("b");
  });

  it("names a run Coze's error envelope names, sealed to the tenant", async () => {
    async function* failing(): AsyncGenerator<WorkflowEvent> {
      yield message("x", "M", true);
      throw new CozeError("failed", "workflow.stream: failed", {
        step: "workflow.stream",
        executeId: "7400000000000000002",
      });
    }
    const err = await (async () => {
      for await (const _ of relay(failing(), tenant)) {
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CozeError);
    expect(tenant.open("run", (err as CozeError).executeId ?? "")).toBe("7400000000000000002");
  });
});

describe("runError and aboutRun", () => {
  it("keep every fact of the error and add the run", () => {
    const cause = new Error("x");
    const coze = new CozeError("rate_limited", "m", {
      step: "s",
      cause,
      cozeCode: 4013,
      logId: "L",
      retryAfterMs: 5,
    });
    const named = runError(coze, tenant, "1.tag") as CozeError;
    expect(named).toMatchObject({
      code: "rate_limited",
      step: "s",
      cozeCode: 4013,
      logId: "L",
      retryAfterMs: 5,
      executeId: "1.tag",
    });
    expect(named.cause).toBe(cause);
    const gateway = aboutRun(
      new GatewayError("not_found", "m", { field: "f" }),
      "2.tag",
    ) as GatewayError;
    expect([gateway.code, gateway.field, gateway.executeId]).toEqual(["not_found", "f", "2.tag"]);
    const other = new Error("abort");
    expect(aboutRun(other, "3.tag")).toBe(other);
  });
});
