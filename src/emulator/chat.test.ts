import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { catalog } from "./catalog.js";
import { startEmulator } from "./server.js";
import { callApi, mintToken, parseSseFrames, type SseFrame } from "./testing.js";
import type { Emulator } from "./types.js";

let emulator: Emulator;
let token: string;

beforeAll(async () => {
  emulator = await startEmulator({ timing: { slowDeltaMs: 5 } });
  token = await mintToken(emulator, await emulator.createApp());
});
afterAll(() => emulator.close());

const user = (content: string) => ({ role: "user", content, content_type: "text" });
const chat = (body: Record<string, unknown>, conversationId?: string) =>
  callApi(
    emulator,
    token,
    "POST",
    `/v3/chat${conversationId === undefined ? "" : `?conversation_id=${conversationId}`}`,
    {
      user_id: "u1",
      ...body,
    },
  );
const data = (frame: SseFrame | undefined) => JSON.parse(frame?.data ?? "null");
type Json = Record<string, unknown>;

async function completedChat(conversationId: string, chatId: string): Promise<Json> {
  let last: Json = {};
  await vi.waitFor(
    async () => {
      const reply = await callApi(
        emulator,
        token,
        "GET",
        `/v3/chat/retrieve?conversation_id=${conversationId}&chat_id=${chatId}`,
      );
      last = reply.json<{ data: Json }>().data;
      expect(["in_progress", "created"]).not.toContain(last.status);
    },
    { timeout: 2000, interval: 5 },
  );
  return last;
}

describe("POST /v3/chat stream", () => {
  it("frames events byte-exactly as `event:` + `data:` + blank line and closes after done", async () => {
    const reply = await chat({
      bot_id: catalog.bots.echo,
      stream: true,
      additional_messages: [user("hello there")],
    });
    expect(reply.status).toBe(200);
    expect(reply.headers.get("content-type")).toBe("text/event-stream");
    expect(reply.headers.get("x-tt-logid")).toMatch(/^\d{14}[0-9A-F]{20}$/);
    const frames = parseSseFrames(reply.text);
    // Byte-exact: no space after the colon, compact single-line JSON, nothing else on the wire.
    const rebuilt = frames
      .map((f) => `event:${f.event}\ndata:${JSON.stringify(JSON.parse(f.data))}\n\n`)
      .join("");
    expect(reply.text).toBe(rebuilt);
    const names = frames.map((f) => f.event);
    const deltas = names.filter((n) => n === "conversation.message.delta").length;
    expect(deltas).toBeGreaterThanOrEqual(3);
    expect(names).toEqual([
      "conversation.chat.created",
      "conversation.chat.in_progress",
      ...Array<string>(deltas).fill("conversation.message.delta"),
      "conversation.message.completed",
      "conversation.message.completed",
      "conversation.message.completed",
      "conversation.chat.completed",
      "done",
    ]);
    expect(frames.at(-1)?.data).toBe('"[DONE]"');
    expect(data(frames[0])).toMatchObject({
      status: "created",
      bot_id: catalog.bots.echo,
      last_error: { code: 0, msg: "" },
    });
    const deltaFrames = frames.filter((f) => f.event === "conversation.message.delta").map(data);
    expect(new Set(deltaFrames.map((d) => d.id)).size).toBe(1);
    expect(deltaFrames.map((d) => d.content).join("")).toBe("You said: hello there");
    const [answer, verbose, followUp] = frames
      .filter((f) => f.event === "conversation.message.completed")
      .map(data);
    expect(answer).toMatchObject({
      type: "answer",
      role: "assistant",
      content: "You said: hello there",
      id: deltaFrames[0].id,
    });
    expect(JSON.parse(verbose.content)).toMatchObject({ msg_type: "generate_answer_finish" });
    expect(followUp.type).toBe("follow_up");
    const done = data(frames.at(-2));
    expect(done.status).toBe("completed");
    expect(done.usage.input_count).toBeGreaterThan(0);
    expect(done.usage.output_count).toBeGreaterThan(0);
    expect(done.completed_at).toBeGreaterThanOrEqual(done.created_at);
  });

  it("streams reasoning_content deltas before the answer deltas", async () => {
    const reply = await chat({
      bot_id: catalog.bots.reasoning,
      stream: true,
      additional_messages: [user("why")],
    });
    const deltas = parseSseFrames(reply.text)
      .filter((f) => f.event === "conversation.message.delta")
      .map(data);
    const firstAnswer = deltas.findIndex((d) => d.content !== "");
    expect(firstAnswer).toBeGreaterThan(0);
    expect(deltas.slice(0, firstAnswer).every((d) => d.reasoning_content !== "")).toBe(true);
    expect(
      deltas
        .slice(firstAnswer)
        .map((d) => d.content)
        .join(""),
    ).toBe("You said: why");
  });

  it("keeps conversation history: the second turn received the first question and answer", async () => {
    const first = await chat({ bot_id: catalog.bots.echo, additional_messages: [user("one")] });
    const { id, conversation_id } = first.json<{ data: Json }>().data as {
      id: string;
      conversation_id: string;
    };
    await completedChat(conversation_id, id);
    const second = await chat(
      {
        bot_id: catalog.bots.echo,
        stream: true,
        custom_variables: { name: "Ada" },
        meta_data: null,
        additional_messages: [
          { ...user("!received please"), id: "", meta_data: null, type: null, created_at: 0 },
        ],
      },
      conversation_id,
    );
    const answer = parseSseFrames(second.text)
      .filter((f) => f.event === "conversation.message.completed")
      .map(data)[0];
    expect(JSON.parse(answer.content)).toEqual({
      user_id: "u1",
      messages: [
        { role: "user", type: "question", content_type: "text", content: "one" },
        { role: "assistant", type: "answer", content_type: "text", content: "You said: one" },
        { role: "user", type: "question", content_type: "text", content: "!received please" },
      ],
      custom_variables: { name: "Ada" },
      meta_data: {},
      parameters: {},
    });
  });

  it("treats an empty conversation_id as absent and refuses an unknown one with 4002", async () => {
    const fresh = await chat({ bot_id: catalog.bots.echo, additional_messages: [user("x")] }, "");
    expect(fresh.json().code).toBe(0);
    const unknown = await chat(
      { bot_id: catalog.bots.echo, additional_messages: [user("x")] },
      "7000000000000000000",
    );
    expect(unknown.json()).toMatchObject({
      code: 4002,
      detail: { logid: unknown.headers.get("x-tt-logid") },
    });
  });
});

describe("chat failures", () => {
  it("fails with the recorded Chat-object form, then done", async () => {
    const frames = parseSseFrames(
      (
        await chat({
          bot_id: catalog.bots.failing,
          stream: true,
          additional_messages: [user("hi")],
        })
      ).text,
    );
    expect(frames.map((f) => f.event).slice(-2)).toEqual(["conversation.chat.failed", "done"]);
    expect(data(frames.at(-2))).toMatchObject({
      status: "failed",
      last_error: { code: 5000, msg: "event interval error" },
    });
    expect(data(frames.at(-2)).failed_at).toBeTypeOf("number");
  });

  it("fails with the docs' bare form when the text says bare", async () => {
    const frames = parseSseFrames(
      (
        await chat({
          bot_id: catalog.bots.failing,
          stream: true,
          additional_messages: [user("bare")],
        })
      ).text,
    );
    expect(data(frames.at(-2))).toEqual({ code: 701231, msg: "error" });
  });

  it("ends with an error event and no done when the text says error-event", async () => {
    const frames = parseSseFrames(
      (
        await chat({
          bot_id: catalog.bots.failing,
          stream: true,
          additional_messages: [user("error-event")],
        })
      ).text,
    );
    expect(frames.at(-1)?.event).toBe("error");
    expect(data(frames.at(-1))).toEqual({ code: 5000, msg: "internal error" });
  });

  it("ends a non-stream chat failed", async () => {
    const created = (
      await chat({ bot_id: catalog.bots.failing, additional_messages: [user("hi")] })
    ).json<{ data: Json }>().data;
    expect(created.status).toBe("in_progress");
    const final = await completedChat(String(created.conversation_id), String(created.id));
    expect(final).toMatchObject({ status: "failed", last_error: { code: 5000 } });
  });

  it.each([
    {
      name: "an unknown bot",
      code: 4200,
      body: { bot_id: "7390000000000009999", additional_messages: [user("x")] },
    },
    { name: "a missing bot_id", code: 4000, body: { additional_messages: [user("x")] } },
    { name: "a missing user_id", code: 4000, body: { bot_id: catalog.bots.echo, user_id: "" } },
    {
      name: "non-stream without history saving",
      code: 4000,
      body: { bot_id: catalog.bots.echo, stream: false, auto_save_history: false },
    },
    {
      name: "a bad role",
      code: 4000,
      body: { bot_id: catalog.bots.echo, additional_messages: [{ role: "system", content: "x" }] },
    },
    {
      name: "an unknown file id",
      code: 4000,
      body: {
        bot_id: catalog.bots.echo,
        additional_messages: [
          {
            role: "user",
            content_type: "object_string",
            content: '[{"type":"image","file_id":"1"}]',
          },
        ],
      },
    },
  ])("answers $name with a JSON envelope, HTTP 200, code $code", async ({ body, code }) => {
    const reply = await chat({ stream: true, ...body });
    expect(reply.status).toBe(200);
    expect(reply.headers.get("content-type")).toBe("application/json");
    expect(reply.json()).toMatchObject({
      code,
      msg: expect.any(String),
      detail: { logid: expect.any(String) },
    });
  });
});

describe("non-stream chat, retrieve, messages, cancel", () => {
  it("returns in_progress, completes in the background, and lists answer, verbose and follow_up", async () => {
    const created = (
      await chat({ bot_id: catalog.bots.echo, additional_messages: [user("later")] })
    ).json<{ data: Json }>().data;
    expect(created.status).toBe("in_progress");
    const final = await completedChat(String(created.conversation_id), String(created.id));
    expect(final.status).toBe("completed");
    const query = `conversation_id=${created.conversation_id}&chat_id=${created.id}`;
    const viaPost = await callApi(emulator, token, "POST", `/v3/chat/retrieve?${query}`);
    expect(viaPost.json<{ data: Json }>().data.status).toBe("completed");
    const list = (await callApi(emulator, token, "GET", `/v3/chat/message/list?${query}`)).json<{
      data: Json[];
    }>().data;
    expect(list.map((m) => m.type)).toEqual(["answer", "verbose", "follow_up"]);
    for (const m of list)
      expect(m).toMatchObject({ role: "assistant", content_type: "text", chat_id: created.id });
    expect(list[0]?.content).toBe("You said: later");
  });

  it("refuses a second chat in a running conversation with 4016, cancels it, then 4104 on cancel again", async () => {
    const created = (
      await chat({ bot_id: catalog.bots.slow, additional_messages: [user("go")] })
    ).json<{ data: Json }>().data;
    const conversationId = String(created.conversation_id);
    const busy = await chat(
      { bot_id: catalog.bots.echo, additional_messages: [user("me too")] },
      conversationId,
    );
    expect(busy.json().code).toBe(4016);
    const body = { conversation_id: conversationId, chat_id: created.id };
    const canceled = await callApi(emulator, token, "POST", "/v3/chat/cancel", body);
    expect(canceled.json<{ data: Json }>().data.status).toBe("canceled");
    expect((await callApi(emulator, token, "POST", "/v3/chat/cancel", body)).json().code).toBe(
      4104,
    );
    expect(
      (
        await chat(
          { bot_id: catalog.bots.echo, additional_messages: [user("now")] },
          conversationId,
        )
      ).json().code,
    ).toBe(0);
  });

  it("ends a streaming slow chat with done when it is canceled", async () => {
    const res = await fetch(`${emulator.url}/v3/chat`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({
        bot_id: catalog.bots.slow,
        user_id: "u",
        stream: true,
        additional_messages: [user("hi")],
      }),
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    const created = JSON.parse(/data:(.*)\n/.exec(first)?.[1] ?? "{}");
    await callApi(emulator, token, "POST", "/v3/chat/cancel", {
      conversation_id: created.conversation_id,
      chat_id: created.id,
    });
    let rest = first;
    for (let r = await reader.read(); !r.done; r = await reader.read())
      rest += new TextDecoder().decode(r.value);
    const names = parseSseFrames(rest).map((f) => f.event);
    expect(names.at(-1)).toBe("done");
    expect(names).not.toContain("conversation.chat.completed");
  });

  it("stops a slow stream when the client disconnects: the chat ends canceled, no stream stays open", async () => {
    const abort = new AbortController();
    const res = await fetch(`${emulator.url}/v3/chat`, {
      method: "POST",
      signal: abort.signal,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({
        bot_id: catalog.bots.slow,
        user_id: "u",
        stream: true,
        additional_messages: [user("bye")],
      }),
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const created = JSON.parse(
      /data:(.*)\n/.exec(new TextDecoder().decode((await reader.read()).value))?.[1] ?? "{}",
    );
    expect(emulator.stats().openStreams).toBe(1);
    abort.abort();
    await vi.waitFor(() => expect(emulator.stats().openStreams).toBe(0), {
      timeout: 2000,
      interval: 5,
    });
    expect((await completedChat(created.conversation_id, created.id)).status).toBe("canceled");
  });
});

describe("tool bot", () => {
  it("requires a get_weather call, then answers the submitted output (non-stream)", async () => {
    const frames = parseSseFrames(
      (await chat({ bot_id: catalog.bots.tool, stream: true, additional_messages: [user("Oslo")] }))
        .text,
    );
    expect(frames.map((f) => f.event).slice(-3)).toEqual([
      "conversation.message.completed",
      "conversation.chat.requires_action",
      "done",
    ]);
    const action = data(frames.at(-2));
    const [call] = action.required_action.submit_tool_outputs.tool_calls;
    expect(call).toMatchObject({
      type: "function",
      function: { name: "get_weather", arguments: '{"location":"Oslo"}' },
    });
    const path = `/v3/chat/submit_tool_outputs?conversation_id=${action.conversation_id}&chat_id=${action.id}`;
    const wrong = await callApi(emulator, token, "POST", path, {
      tool_outputs: [{ tool_call_id: "nope", output: "x" }],
    });
    expect(wrong.json().code).toBe(4000);
    const submitted = await callApi(emulator, token, "POST", path, {
      tool_outputs: [{ tool_call_id: call.id, output: "rain" }],
      stream: false,
    });
    expect(submitted.json<{ data: Json }>().data.status).toBe("in_progress");
    expect((await completedChat(action.conversation_id, action.id)).status).toBe("completed");
    const list = (
      await callApi(
        emulator,
        token,
        "GET",
        `/v3/chat/message/list?conversation_id=${action.conversation_id}&chat_id=${action.id}`,
      )
    ).json<{ data: Json[] }>().data;
    expect(list.map((m) => m.type)).toEqual(["function_call", "answer", "verbose", "follow_up"]);
    expect(list[1]?.content).toBe("The tool said: rain");
    expect(
      (
        await callApi(emulator, token, "POST", path, {
          tool_outputs: [{ tool_call_id: call.id, output: "again" }],
        })
      ).json().code,
    ).toBe(4000);
  });
});
