import { beforeEach, describe, expect, it } from "vitest";
import { streamResponseOf } from "../../test/support/event-streams.js";
import { createChatAccumulator } from "./chat-result.js";
import { type ChatEvent, type ChatStreamState, createChatTurn } from "./chat-stream.js";
import { CozeError } from "./errors.js";
import type { StreamResponse } from "./event-stream.js";

/** A chat stream over a fixed body, read by the real batch reader and SSE decoder. */
const streamOf = (text: string) => streamResponseOf("chat.stream", new TextEncoder().encode(text));

/** The two ways to read a chat turn: its events (streams) and a callback (non-stream). */
const readers = {
  "turn.events()": async (
    stream: StreamResponse,
    state: ChatStreamState,
    onEvent: (e: ChatEvent) => void,
  ) => {
    for await (const e of createChatTurn("chat.stream", stream, state).events()) onEvent(e);
  },
  "turn.read()": (
    stream: StreamResponse,
    state: ChatStreamState,
    onEvent: (e: ChatEvent) => void,
  ) => createChatTurn("chat.stream", stream, state).read(onEvent),
};
let reader: keyof typeof readers = "turn.events()";

async function run(text: string) {
  const state: ChatStreamState = { conversationId: undefined, chatId: undefined, finished: false };
  const events: ChatEvent[] = [];
  let error: unknown;
  try {
    await readers[reader](streamOf(text), state, (e) => events.push(e));
  } catch (err) {
    error = err;
  }
  return { events, error: error as CozeError | undefined, state };
}

// The recorded stream of coze-api.md §4.5 (py:tests/testdata/chat_text_stream_resp.txt).
const chat = `"id":"7382159487131697202","conversation_id":"7381473525342978089","bot_id":"7379462189365198898"`;
const msg = `"id":"7382159494123470858","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","role":"assistant","chat_id":"7382159487131697202","content_type":"text"`;
const recorded = [
  "event:conversation.chat.created",
  `data:{${chat},"completed_at":1718792949,"last_error":{"code":0,"msg":""},"status":"created","usage":{"token_count":0,"output_count":0,"input_count":0}}`,
  "",
  "event:conversation.chat.in_progress",
  `data:{${chat},"status":"in_progress"}`,
  "",
  "event:conversation.message.delta",
  `data:{${msg},"type":"answer","content":"2024 年"}`,
  "",
  "event:conversation.message.delta",
  `data:{${msg},"type":"answer","content":" 10 月 1 日是星期三。"}`,
  "",
  "event:conversation.message.completed",
  `data:{${msg},"type":"answer","content":"2024 年 10 月 1 日是星期三。"}`,
  "",
  "event:conversation.message.completed",
  `data:{${msg.replace("7382159494123470858", "7382159494123470859")},"type":"verbose","content":"{\\"msg_type\\":\\"generate_answer_finish\\",\\"data\\":\\"\\",\\"from_module\\":null,\\"from_unit\\":null}"}`,
  "",
  "event:conversation.chat.completed",
  `data:{${chat},"status":"completed","usage":{"token_count":633,"output_count":19,"input_count":614}}`,
  "",
  "event:done",
  'data:"[DONE]"',
  "",
  "",
].join("\n");

describe.each(Object.keys(readers) as (keyof typeof readers)[])("%s", (name) => {
  beforeEach(() => {
    reader = name;
  });

  it("types every event of the recorded stream and ends at done", async () => {
    const { events, error, state } = await run(recorded);
    expect(error).toBeUndefined();
    expect(events.map((e) => e.type)).toEqual([
      "chat.created",
      "chat.in_progress",
      "message.delta",
      "message.delta",
      "message.completed",
      "message.completed",
      "chat.completed",
      "done",
    ]);
    expect(state).toEqual({
      conversationId: "7381473525342978089",
      chatId: "7382159487131697202",
      finished: true,
    });
  });

  it("aggregates the answer and usage, keeping verbose messages out of the answer", async () => {
    const acc = createChatAccumulator();
    for (const e of (await run(recorded)).events) acc.add(e);
    const result = acc.result();
    expect(result.answer).toBe("2024 年 10 月 1 日是星期三。");
    expect(result.usage).toEqual({ tokenCount: 633, outputCount: 19, inputCount: 614 });
    expect(result.messages.map((m) => m.type)).toEqual(["answer", "verbose"]);
    expect(result.chatId).toBe("7382159487131697202");
  });

  it("yields the recorded failure, then throws failed with Coze's code", async () => {
    const failed = `event:conversation.chat.failed\ndata:{${chat},"completed_at":1720698285,"failed_at":1720698286,"last_error":{"code":5000,"msg":"event interval error"},"status":"failed"}\n`;
    const { events, error } = await run(failed);
    expect(events).toMatchObject([
      { type: "chat.failed", code: 5000, msg: "event interval error" },
    ]);
    expect(error).toBeInstanceOf(CozeError);
    expect(error?.code).toBe("failed");
    expect(error?.cozeCode).toBe(5000);
    expect(error?.message).not.toContain("event interval");
  });

  it("accepts the docs' bare failure form, with a string code", async () => {
    const { error } = await run(
      'event:conversation.chat.failed\ndata:{"code":"720702204","msg":"会话名不存在"}\n\n',
    );
    expect(error?.code).toBe("failed");
    expect(error?.cozeCode).toBe(720702204);
  });

  it("turns an error event into a typed error classified by its code", async () => {
    const { events, error } = await run(
      `event:conversation.chat.created\ndata:{${chat},"status":"created"}\n\nevent:error\ndata:{"code":4013,"msg":"rate"}\n\n`,
    );
    expect(events.at(-1)).toEqual({ type: "error", code: 4013, msg: "rate" });
    expect(error?.code).toBe("rate_limited");
  });

  it("fails a stream cut before the chat finished, even after answer deltas", async () => {
    const cut = recorded.slice(0, recorded.indexOf("event:conversation.message.completed"));
    const { events, error } = await run(cut);
    expect(events.some((e) => e.type === "message.delta")).toBe(true);
    expect(error?.code).toBe("unavailable");
    expect(error?.message).toBe("chat.stream: stream ended before the chat finished");
  });

  it("ends normally after requires_action, with the tool calls", async () => {
    const action = `event:conversation.chat.requires_action\ndata:{${chat},"status":"requires_action","required_action":{"type":"submit_tool_outputs","submit_tool_outputs":{"tool_calls":[{"id":"call_1","type":"function","function":{"name":"local_data_assistant","arguments":"{\\"location\\":\\"南京\\",\\"type\\":0}"}}]}}}\n\n`;
    const { events, error } = await run(action);
    expect(error).toBeUndefined();
    expect(events).toMatchObject([
      {
        type: "chat.requires_action",
        toolCalls: [
          {
            id: "call_1",
            type: "function",
            name: "local_data_assistant",
            arguments: '{"location":"南京","type":0}',
          },
        ],
      },
    ]);
  });

  it("reads every done variant", async () => {
    for (const [data, debugUrl] of [
      ['"[DONE]"', undefined],
      ["[DONE]", undefined],
      ["", undefined],
      [
        '{"debug_url":"https://www.coze.cn/work_flow?execute_id=1"}',
        "https://www.coze.cn/work_flow?execute_id=1",
      ],
    ] as const) {
      const { events, error } = await run(`event:done\ndata:${data}\n\n`);
      expect(error).toBeUndefined();
      expect(events).toEqual([{ type: "done", debugUrl }]);
    }
  });

  it("reports data that is not JSON as a protocol error", async () => {
    const { error } = await run('event:conversation.message.delta\ndata:{"content":\n\n');
    expect(error?.code).toBe("protocol");
  });

  it("throws the error envelope sent as a bare JSON line", async () => {
    const { error } = await run('{"code":4100,"msg":"authentication is invalid"}');
    expect(error?.code).toBe("authentication");
  });
});
