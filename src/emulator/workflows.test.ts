import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalog } from "./catalog.js";
import { startEmulator } from "./server.js";
import { callApi, mintToken, parseSseFrames, type SseFrame } from "./testing.js";
import type { Emulator } from "./types.js";

let emulator: Emulator;
let token: string;

beforeAll(async () => {
  emulator = await startEmulator({ timing: { pingMs: 5 } });
  token = await mintToken(emulator, await emulator.createApp());
});
afterAll(() => emulator.close());

type Json = Record<string, unknown>;
const post = (path: string, body: unknown, as = token) => callApi(emulator, as, "POST", path, body);
const run = (body: Json) => post("/v1/workflow/run", body);
const history = async (workflowId: string, executeId: string) =>
  (
    await callApi(emulator, token, "GET", `/v1/workflows/${workflowId}/run_histories/${executeId}`)
  ).json<{ data: Json[] }>().data;
const data = (frame: SseFrame | undefined) => JSON.parse(frame?.data ?? "null");

/** Every field of a run-history entry (coze-api.md §5.4). */
const HISTORY_FIELDS = [
  "bot_id",
  "connector_id",
  "connector_uid",
  "cost",
  "create_time",
  "debug_url",
  "error_code",
  "error_message",
  "execute_id",
  "execute_status",
  "interrupt_data",
  "is_output_trimmed",
  "logid",
  "node_execute_status",
  "output",
  "run_mode",
  "token",
  "update_time",
  "usage",
];

describe("POST /v1/workflow/run", () => {
  it("answers a sync run with a top-level data string, debug_url, usage and execute_id", async () => {
    const body = (
      await run({ workflow_id: catalog.workflows.echo, parameters: { input: "hi" } })
    ).json();
    expect(body).toMatchObject({ code: 0, msg: "", detail: { logid: expect.any(String) } });
    expect(JSON.parse(String(body.data))).toEqual({ output: "hi" });
    expect(body.execute_id).toMatch(/^\d{19}$/);
    expect(body.debug_url).toBe(
      `https://www.coze.cn/work_flow?execute_id=${body.execute_id}&space_id=7390000000000000100&workflow_id=${catalog.workflows.echo}`,
    );
    expect(body.usage).toMatchObject({
      input_count: expect.any(Number),
      output_count: expect.any(Number),
    });
  });

  it("echoes every parameter when there is more than input, and accepts parameters as a JSON string", async () => {
    const params = { input: "a", extra: 2 };
    const asObject = (
      await run({ workflow_id: catalog.workflows.echo, parameters: params })
    ).json();
    expect(JSON.parse(String(asObject.data))).toEqual({ output: "a", parameters: params });
    const asString = (
      await run({ workflow_id: catalog.workflows.echo, parameters: JSON.stringify(params) })
    ).json();
    expect(asString.data).toBe(asObject.data);
  });

  it("answers an async run in the docs' shape (no code) and serves every history field", async () => {
    const reply = await run({
      workflow_id: catalog.workflows.echo,
      parameters: { input: "bg" },
      is_async: true,
    });
    const body = reply.json();
    expect(Object.keys(body).sort()).toEqual(["debug_url", "detail", "execute_id", "msg"]);
    const entries = await history(catalog.workflows.echo, String(body.execute_id));
    expect(entries).toHaveLength(1);
    const [entry] = entries as [Json];
    expect(Object.keys(entry).sort()).toEqual(HISTORY_FIELDS);
    expect(entry).toMatchObject({
      execute_status: "Success",
      run_mode: 2,
      error_code: "",
      connector_id: "1024",
      is_output_trimmed: false,
    });
    expect(JSON.parse(JSON.parse(String(entry.output)).Output)).toEqual({ output: "bg" });
  });

  it.each([
    { name: "an unknown workflow", code: 4200, body: { workflow_id: "7391000000000009999" } },
    { name: "a missing workflow_id", code: 4000, body: { parameters: {} } },
    {
      name: "bot_id and app_id together",
      code: 4000,
      body: { workflow_id: catalog.workflows.echo, bot_id: "1", app_id: "2" },
    },
  ])("refuses $name with code $code", async ({ body, code }) => {
    expect((await run(body)).json().code).toBe(code);
  });
});

describe("slowAsync workflow", () => {
  it("stays Running until the polls-th history read, counting every read", async () => {
    const { execute_id } = (
      await run({
        workflow_id: catalog.workflows.slowAsync,
        parameters: { polls: 3 },
        is_async: true,
      })
    ).json<{ execute_id: string }>();
    const statuses = [];
    for (let i = 0; i < 4; i += 1)
      statuses.push((await history(catalog.workflows.slowAsync, execute_id))[0]?.execute_status);
    expect(statuses).toEqual(["Running", "Running", "Success", "Success"]);
    expect(emulator.stats().polls[execute_id]).toBe(4);
  });

  it("finishes on the emulator clock: history flips and a sync run returns once the clock passes run_ms", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    const emu = await startEmulator({ now: () => now });
    try {
      const t = await mintToken(emu, await emu.createApp(), {
        claims: { iat: Math.floor(now / 1000) },
      });
      const started = (
        await callApi(emu, t, "POST", "/v1/workflow/run", {
          workflow_id: catalog.workflows.slowAsync,
          parameters: { run_ms: 60_000 },
          is_async: true,
        })
      ).json();
      const read = async () =>
        (
          await callApi(
            emu,
            t,
            "GET",
            `/v1/workflows/${catalog.workflows.slowAsync}/run_histories/${started.execute_id}`,
          )
        ).json<{ data: Json[] }>().data[0]?.execute_status;
      expect(await read()).toBe("Running");
      now += 60_000;
      expect(await read()).toBe("Success");
      const sync = callApi(emu, t, "POST", "/v1/workflow/run", {
        workflow_id: catalog.workflows.slowAsync,
        parameters: { run_ms: 1000, input: "done" },
      });
      let settled = false;
      void sync.then(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 30));
      expect(settled).toBe(false);
      now += 1000;
      expect(JSON.parse(String((await sync).json().data))).toEqual({
        output: "done",
        parameters: { run_ms: 1000, input: "done" },
      });
    } finally {
      await emu.close();
    }
  });
});

describe("POST /v1/workflow/stream_run", () => {
  it("frames `id:`/`event:`/`data:` byte-exactly, ids from 0, Message chunks, End, Done", async () => {
    const reply = await post("/v1/workflow/stream_run", {
      workflow_id: catalog.workflows.echo,
      parameters: { input: "streamed" },
    });
    expect(reply.headers.get("content-type")).toBe("text/event-stream");
    const frames = parseSseFrames(reply.text);
    const rebuilt = frames
      .map((f, i) => `id: ${i}\nevent: ${f.event}\ndata: ${JSON.stringify(JSON.parse(f.data))}\n\n`)
      .join("");
    expect(reply.text).toBe(rebuilt);
    const messages = frames.filter((f) => f.event === "Message").map(data);
    expect(messages.length).toBeGreaterThanOrEqual(4);
    const node = messages.slice(0, -1);
    expect(node.map((m) => m.content).join("")).toBe("You said: streamed");
    expect(node.map((m) => m.node_is_finish)).toEqual([
      ...Array<boolean>(node.length - 1).fill(false),
      true,
    ]);
    expect(node.map((m) => m.node_seq_id)).toEqual(node.map((_, i) => String(i)));
    const end = messages.at(-1);
    expect(end).toMatchObject({ node_title: "End", node_is_finish: true, node_seq_id: "0" });
    expect(JSON.parse(end.content)).toEqual({ output: "streamed" });
    expect(frames.at(-1)?.event).toBe("Done");
    expect(data(frames.at(-1)).debug_url).toContain("execute_id=");
  });

  it("sends PING {} while a slow run waits", async () => {
    const frames = parseSseFrames(
      (
        await post("/v1/workflow/stream_run", {
          workflow_id: catalog.workflows.slowAsync,
          parameters: { run_ms: 40 },
        })
      ).text,
    );
    const pings = frames.filter((f) => f.event === "PING");
    expect(pings.length).toBeGreaterThanOrEqual(2);
    expect(pings.every((f) => f.data === "{}")).toBe(true);
    expect(frames.map((f) => f.event).slice(-2)).toEqual(["Message", "Done"]);
  });

  it("fails with an Error event (integer error_code) and no Done; async history says Fail with a string code", async () => {
    const frames = parseSseFrames(
      (await post("/v1/workflow/stream_run", { workflow_id: catalog.workflows.failing })).text,
    );
    expect(frames.at(-1)?.event).toBe("Error");
    expect(data(frames.at(-1))).toEqual({
      error_code: 720702017,
      error_message: expect.any(String),
    });
    const sync = (await run({ workflow_id: catalog.workflows.failing })).json();
    expect(sync).toMatchObject({
      code: 720702017,
      debug_url: expect.any(String),
      execute_id: expect.any(String),
    });
    const { execute_id } = (
      await run({ workflow_id: catalog.workflows.failing, is_async: true })
    ).json<{ execute_id: string }>();
    const [entry] = await history(catalog.workflows.failing, execute_id);
    expect(entry).toMatchObject({ execute_status: "Fail", error_code: "720702017", output: "" });
    expect(String(entry?.error_message)).not.toBe("");
  });
});

describe("interrupt workflow and stream_resume", () => {
  const interrupted = async () => {
    const frames = parseSseFrames(
      (await post("/v1/workflow/stream_run", { workflow_id: catalog.workflows.interrupt })).text,
    );
    expect(frames.map((f) => f.event).at(-1)).toBe("Interrupt"); // no Done, like the docs' example
    return data(frames.at(-1));
  };
  const resume = (eventId: string, resumeData: string) =>
    post("/v1/workflow/stream_resume", {
      workflow_id: catalog.workflows.interrupt,
      event_id: eventId,
      resume_data: resumeData,
      interrupt_type: 2,
    });

  it("interrupts with a question and resumes once with the answer, ids restarting at 0", async () => {
    const interrupt = await interrupted();
    expect(interrupt).toEqual({
      interrupt_data: {
        data: "Which city?",
        event_id: expect.stringMatching(/^\d{19}\/\d{19}$/),
        type: 2,
      },
      node_title: "Question",
    });
    const frames = parseSseFrames((await resume(interrupt.interrupt_data.event_id, "Paris")).text);
    expect(frames.map((f) => f.id)).toEqual(frames.map((_, i) => String(i)));
    expect(JSON.parse(data(frames.at(-2)).content)).toEqual({ output: "You answered: Paris" });
    const again = await resume(interrupt.interrupt_data.event_id, "Rome");
    expect(again.headers.get("content-type")).toBe("application/json");
    expect(again.json().code).toBe(4000);
  });

  it("asks again on an empty answer and refuses a fourth resume", async () => {
    let eventId = (await interrupted()).interrupt_data.event_id;
    for (let i = 0; i < 3; i += 1) {
      const frames = parseSseFrames((await resume(eventId, "")).text);
      eventId = data(frames.at(-1)).interrupt_data.event_id;
    }
    expect((await resume(eventId, "finally")).json().code).toBe(4000);
  });

  it("returns interrupt_data from a sync run, and history shows the pending interrupt", async () => {
    const body = (await run({ workflow_id: catalog.workflows.interrupt })).json<{
      execute_id: string;
      interrupt_data: Json;
    }>();
    expect(body.interrupt_data).toMatchObject({ data: "Which city?", type: 2 });
    const [entry] = await history(catalog.workflows.interrupt, body.execute_id);
    expect(entry).toMatchObject({
      execute_status: "Running",
      interrupt_data: body.interrupt_data,
      run_mode: 0,
    });
  });

  it("refuses an unknown event id before streaming", async () => {
    expect((await resume("1/2", "x")).json().code).toBe(4000);
  });
});

describe("large workflow", () => {
  it("trims a 1.5 MiB output in history and serves it whole from execute_nodes", async () => {
    const { execute_id } = (
      await run({ workflow_id: catalog.workflows.large, is_async: true })
    ).json<{ execute_id: string }>();
    const [entry] = (await history(catalog.workflows.large, execute_id)) as [Json];
    expect(entry.is_output_trimmed).toBe(true);
    expect(String(entry.output).length).toBeLessThanOrEqual(1024 * 1024);
    const [node] = Object.values(
      entry.node_execute_status as Record<string, { node_execute_uuid: string }>,
    );
    const nodeReply = await callApi(
      emulator,
      token,
      "GET",
      `/v1/workflows/${catalog.workflows.large}/run_histories/${execute_id}/execute_nodes/${node?.node_execute_uuid}`,
    );
    const output = nodeReply.json<{ data: { is_finish: boolean; node_output: string } }>().data;
    expect(output.is_finish).toBe(true);
    expect(JSON.parse(output.node_output).output).toHaveLength(1.5 * 1024 * 1024);
  });

  it("does not trim a small output", async () => {
    const { execute_id } = (
      await run({
        workflow_id: catalog.workflows.large,
        parameters: { size_bytes: 10 },
        is_async: true,
      })
    ).json<{ execute_id: string }>();
    const [entry] = await history(catalog.workflows.large, execute_id);
    expect(entry?.is_output_trimmed).toBe(false);
    expect(JSON.parse(JSON.parse(String(entry?.output)).Output)).toEqual({
      output: "x".repeat(10),
    });
  });
});

describe("POST /v1/workflows/chat (chatflow)", () => {
  it("streams chat events with a space after the colon, no bot_id, and done {debug_url}", async () => {
    const reply = await post("/v1/workflows/chat", {
      workflow_id: catalog.workflows.chatflow,
      additional_messages: [{ role: "user", content: "flow", content_type: "text" }],
    });
    const frames = parseSseFrames(reply.text);
    expect(reply.text).toBe(
      frames
        .map((f) => `event: ${f.event}\ndata: ${JSON.stringify(JSON.parse(f.data))}\n\n`)
        .join(""),
    );
    expect(data(frames[0])).not.toHaveProperty("bot_id");
    expect(
      frames
        .filter((f) => f.event === "conversation.message.delta")
        .map((f) => data(f).content)
        .join(""),
    ).toBe("You said: flow");
    expect(data(frames.at(-1)).debug_url).toMatch(/execute_mode=2$/);
    // The conversation (conversation_id in the body) keeps the history.
    const next = await post("/v1/workflows/chat", {
      workflow_id: catalog.workflows.chatflow,
      conversation_id: data(frames[0]).conversation_id,
      additional_messages: [{ role: "user", content: "!received", content_type: "text" }],
    });
    const answer = parseSseFrames(next.text).find(
      (f) => f.event === "conversation.message.completed",
    );
    expect(JSON.parse(data(answer).content).messages).toHaveLength(3);
  });

  it("refuses a workflow that is not a chatflow", async () => {
    const reply = await post("/v1/workflows/chat", {
      workflow_id: catalog.workflows.echo,
      additional_messages: [{ role: "user", content: "x" }],
    });
    expect(reply.json().code).toBe(4000);
  });
});
