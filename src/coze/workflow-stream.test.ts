import { describe, expect, it } from "vitest";
import { streamResponseOf } from "../../test/support/event-streams.js";
import type { CozeError } from "./errors.js";
import { executeIdOf, type WorkflowEvent, workflowEvents } from "./workflow-stream.js";
import { historyOutput, parseRun } from "./workflow-types.js";

const streamOf = (text: string) => streamResponseOf("workflow.stream", text);

async function run(text: string) {
  const events: WorkflowEvent[] = [];
  let error: CozeError | undefined;
  const stream = streamOf(text);
  try {
    for await (const e of workflowEvents("workflow.stream", stream)) events.push(e);
  } catch (err) {
    error = err as CozeError;
  } finally {
    await stream.close();
  }
  return { events, error };
}

describe("workflowEvents", () => {
  it("reads the docs' stream_run example: node messages, the End output, then Done", async () => {
    const { events, error } = await run(
      [
        "id: 0",
        "event: Message",
        'data: {"content":"msg","node_is_finish":false,"node_seq_id":"0","node_title":"Message"}',
        "",
        "id: 4",
        "event: Message",
        'data: {"content":"坐不下！","node_is_finish":true,"node_seq_id":"4","node_title":"Message"}',
        "",
        "id: 5",
        "event: Message",
        'data: {"content":"{\\"output\\":\\"...\\"}","cost":"0.00","node_is_finish":true,"node_seq_id":"0","node_title":"","token":0}',
        "",
        "id: 6",
        "event: Done",
        "data: {}",
        "",
      ].join("\n"),
    );
    expect(error).toBeUndefined();
    expect(events.map((e) => [e.type, e.seq])).toEqual([
      ["message", 0],
      ["message", 4],
      ["message", 5],
      ["done", 6],
    ]);
    expect(events[2]).toMatchObject({ content: '{"output":"..."}', nodeIsFinish: true });
  });

  it("reads the resume example, which has no blank lines between events", async () => {
    const { events, error } = await run(
      'id: 0\nevent: Message\ndata: {"content":"{\\"output\\":[1]}","content_type":"text","node_is_finish":true,"node_seq_id":"0","node_title":"End","token":386}\nid: 1\nevent: Done\ndata: {}\n',
    );
    expect(error).toBeUndefined();
    expect(events).toMatchObject([
      { type: "message", nodeTitle: "End", content: '{"output":[1]}' },
      { type: "done" },
    ]);
  });

  it("ends normally after an interrupt that is not followed by Done", async () => {
    const { events, error } = await run(
      'id: 0\nevent: Interrupt\ndata: {"interrupt_data":{"data":"","event_id":"7404830425073352713/2769808280134765896","type":2},"node_title":"问答"}\n\n',
    );
    expect(error).toBeUndefined();
    expect(events).toEqual([
      {
        type: "interrupt",
        seq: 0,
        interrupt: {
          eventId: "7404830425073352713/2769808280134765896",
          type: 2,
          data: "",
          question: "",
          contentType: undefined,
          content: undefined,
          nodeTitle: "问答",
          requiredParameters: undefined,
        },
      },
    ]);
  });

  it("yields an Error event, then throws it as a typed error", async () => {
    const { events, error } = await run(
      'id: 0\nevent: Error\ndata: {"error_code":4000,"error_message":"Request parameter error"}\n\n',
    );
    expect(events).toEqual([
      { type: "error", seq: 0, code: 4000, message: "Request parameter error" },
    ]);
    expect(error?.code).toBe("bad_request");
    expect(error?.cozeMessage).toBe("Request parameter error");
  });

  it("fails a stream that ends without Done, Error or Interrupt", async () => {
    const { error } = await run("id: 0\nevent: PING\ndata: {}\n\n");
    expect(error?.code).toBe("unavailable");
  });
});

describe("run history decoding", () => {
  it("reads the docs' run history item and unwraps the End node output once", () => {
    const run = parseRun({
      execute_id: "743104097880585",
      execute_status: "Success",
      bot_id: "742963486232569",
      connector_id: "1024",
      connector_uid: "223687073464",
      run_mode: 0,
      logid: "20241029115423ED85C3401395715F726E",
      create_time: 1730174063,
      update_time: 1730174065,
      output:
        '{"Output":"{\\"content_type\\":1,\\"data\\":\\"来找姐姐有什么事呀\\",\\"original_result\\":null,\\"type_for_model\\":2}"}',
      token: "0",
      error_code: "",
      error_message: "",
      debug_url: "https://www.coze.cn/work_flow?execute_id=743104097880585",
      usage: { input_count: 50, token_count: 150, output_count: 100 },
    });
    expect(run).toMatchObject({
      executeId: "743104097880585",
      status: "success",
      errorCode: undefined,
      createTime: 1730174063,
      isOutputTrimmed: false,
    });
    expect(run?.output?.value).toEqual({
      content_type: 1,
      data: "来找姐姐有什么事呀",
      original_result: null,
      type_for_model: 2,
    });
  });

  it("passes other output shapes through, and keeps non-JSON text as text", () => {
    expect(historyOutput('{"Output":"x","Other":"y"}').value).toEqual({ Output: "x", Other: "y" });
    expect(historyOutput("not json")).toEqual({ text: "not json", value: undefined });
  });

  it("reads a failed run's string error code", () => {
    const run = parseRun({ execute_id: "1", execute_status: "Fail", error_code: "4000" });
    expect(run).toMatchObject({ status: "fail", errorCode: "4000" });
  });
});

describe("executeIdOf", () => {
  it("reads a run's execute id from its debug URL, as every Coze example has it", () => {
    const url =
      "https://www.coze.cn/work_flow?execute_id=741364789030728000&space_id=736142423532160&workflow_id=738958910358870";
    expect(executeIdOf(url)).toBe("741364789030728000");
    expect(executeIdOf(`${url}&execute_mode=2`)).toBe("741364789030728000");
  });

  it("gives nothing for a URL without one, a malformed one, or none at all", () => {
    for (const url of [
      undefined,
      "",
      "not a url",
      "https://www.coze.cn/work_flow?space_id=1",
      "https://www.coze.cn/work_flow?execute_id=abc",
      `https://www.coze.cn/work_flow?execute_id=${"9".repeat(40)}`,
    ]) {
      expect(executeIdOf(url), String(url)).toBeUndefined();
    }
  });

  it("is told with the Done event", async () => {
    const { events } = await run(
      'id: 0\nevent: Done\ndata: {"debug_url":"https://www.coze.cn/work_flow?execute_id=7413647890307280001&space_id=1"}\n\n',
    );
    expect(events).toMatchObject([{ type: "done", executeId: "7413647890307280001" }]);
  });
});
