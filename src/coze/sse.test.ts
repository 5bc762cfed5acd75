import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CozeError } from "./errors.js";
import { createSseDecoder, type SseEvent, type SseOptions } from "./sse.js";

// Recorded chat stream, byte-exact (py:tests/testdata/chat_text_stream_resp.txt, the stream
// coze-api.md §4.5 shows abbreviated): no space after the colon, no final line end.
const chatRecording = `event:conversation.chat.created
data:{"id":"7382159487131697202","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","completed_at":1718792949,"last_error":{"code":0,"msg":""},"status":"created","usage":{"token_count":0,"output_count":0,"input_count":0}}

event:conversation.chat.in_progress
data:{"id":"7382159487131697202","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","completed_at":1718792949,"last_error":{"code":0,"msg":""},"status":"in_progress","usage":{"token_count":0,"output_count":0,"input_count":0}}

event:conversation.message.delta
data:{"id":"7382159494123470858","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","role":"assistant","type":"answer","content":"2","content_type":"text","chat_id":"7382159487131697202"}

event:conversation.message.delta
data:{"id":"7382159494123470858","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","role":"assistant","type":"answer","content":"0","content_type":"text","chat_id":"7382159487131697202"}

event:conversation.message.delta
data:{"id":"7382159494123470858","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","role":"assistant","type":"answer","content":"星期三","content_type":"text","chat_id":"7382159487131697202"}

event:conversation.message.delta
data:{"id":"7382159494123470858","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","role":"assistant","type":"answer","content":"。","content_type":"text","chat_id":"7382159487131697202"}

event:conversation.message.completed
data:{"id":"7382159494123470858","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","role":"assistant","type":"answer","content":"2024 年 10 月 1 日是星期三。","content_type":"text","chat_id":"7382159487131697202"}

event:conversation.chat.completed
data:{"id":"7382159487131697202","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","completed_at":1718792949,"last_error":{"code":0,"msg":""},"status":"completed","usage":{"token_count":633,"output_count":19,"input_count":614}}

event:done
data:"[DONE]"`;

// Recorded workflow stream, byte-exact (py:tests/testdata/workflow_run_stream_resp.txt,
// coze-api.md §5.2): `id:`, `event:`, `data:` with a space after the colon, no final line end.
const workflowRecording = String.raw`id: 0
event: Message
data: {"content":"msg","node_is_finish":false,"node_seq_id":"0","node_title":"Message"}

id: 1
event: Message
data: {"content":"为","node_is_finish":false,"node_seq_id":"1","node_title":"Message"}

id: 2
event: Message
data: {"content":"什么小明要带一把尺子去看电影因","node_is_finish":false,"node_seq_id":"2","node_title":"Message"}

id: 3
event: Message
data: {"content":"为他听说电影很长，怕","node_is_finish":false,"node_seq_id":"3","node_title":"Message"}

id: 4
event: Message
data: {"content":"坐不下！","node_is_finish":true,"node_seq_id":"4","node_title":"Message"}

id: 5
event: Message
data: {"content":"{\"output\":\"为什么小明要带一把尺子去看电影？因为他听说电影很长，怕坐不下！\"}","cost":"0.00","node_is_finish":true,"node_seq_id":"0","node_title":"","token":0}

id: 0
event: Error
data: {"error_code":4000,"error_message":"Request parameter error"}

id: 0
event: Message
data: {"content":"请问你想查看哪个城市、哪一天的天气呢","content_type":"text","node_is_finish":true,"node_seq_id":"0","node_title":"问答"}

id: 1
event: Interrupt
data: {"interrupt_data":{"data":"","event_id":"7404830425073352713/2769808280134765896","type":2},"node_title":"问答"}

id: 6
event: Done
data: {}`;

// The stream_resume docs example from coze-api.md §5.3: no blank line between events.
const resumeExample = String.raw`id: 0
event: Message
data: {"content":"{\"output\":[...]}","content_type":"text","cost":"0","node_is_finish":true,"node_seq_id":"0","node_title":"End","token":386}
id: 1
event: Done
data: {}
`;

const utf8 = new TextEncoder();
const options: SseOptions = { step: "chat.stream" };

async function* source(...chunks: (Uint8Array | string)[]): AsyncGenerator<Uint8Array | string> {
  for (const chunk of chunks) yield chunk;
}

/**
 * The events of `body`, decoded chunk by chunk as the batch reader decodes an upstream body: each
 * chunk's events as soon as it arrived, a decoder error after the events before it.
 */
async function* decode(
  body: AsyncIterable<Uint8Array | string>,
  opts: SseOptions = options,
): AsyncGenerator<SseEvent, void, undefined> {
  const decoder = createSseDecoder(opts);
  for await (const chunk of body) {
    const out: SseEvent[] = [];
    let failure: { error: unknown } | undefined;
    try {
      decoder.push(chunk, out);
    } catch (error) {
      failure = { error };
    }
    yield* out;
    if (failure !== undefined) throw failure.error;
  }
  const out: SseEvent[] = [];
  decoder.end(out);
  yield* out;
}

async function collect(
  body: AsyncIterable<Uint8Array | string>,
  opts: SseOptions = options,
): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of decode(body, opts)) events.push(event);
  return events;
}

/** The UTF-8 bytes of `text`, cut at the given byte offsets. */
function cut(text: string | Uint8Array, ...at: number[]): Uint8Array[] {
  const bytes = typeof text === "string" ? utf8.encode(text) : text;
  const bounds = [0, ...at, bytes.length];
  return bounds.slice(1).map((end, i) => bytes.subarray(bounds[i], end));
}

/** Parses `text` sent as one chunk of bytes. */
const parse = (text: string, opts?: SseOptions) => collect(source(utf8.encode(text)), opts);

const ev = (event: string | undefined, data: string, id?: string): SseEvent => ({
  id,
  event,
  data,
});

async function protocolFailure(promise: Promise<unknown>): Promise<CozeError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CozeError);
  return err as CozeError;
}

describe("SSE decoder: on recorded Coze streams", () => {
  it("yields every event of the recorded chat stream, with its data line unchanged", async () => {
    const events = await parse(chatRecording);
    expect(events.map((e) => e.event)).toEqual([
      "conversation.chat.created",
      "conversation.chat.in_progress",
      "conversation.message.delta",
      "conversation.message.delta",
      "conversation.message.delta",
      "conversation.message.delta",
      "conversation.message.completed",
      "conversation.chat.completed",
      "done",
    ]);
    expect(events.every((e) => e.id === undefined)).toBe(true);
    expect(events.map((e) => e.data)).toEqual(
      chatRecording
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice("data:".length)),
    );
    expect(events.map((e) => JSON.parse(e.data).content)).toEqual([
      undefined,
      undefined,
      "2",
      "0",
      "星期三",
      "。",
      "2024 年 10 月 1 日是星期三。",
      undefined,
      undefined,
    ]);
    expect(events.at(-1)?.data).toBe('"[DONE]"');
  });

  it("yields every event of the recorded workflow stream with its id", async () => {
    const events = await parse(workflowRecording);
    expect(events.map((e) => [e.id, e.event])).toEqual([
      ["0", "Message"],
      ["1", "Message"],
      ["2", "Message"],
      ["3", "Message"],
      ["4", "Message"],
      ["5", "Message"],
      ["0", "Error"],
      ["0", "Message"],
      ["1", "Interrupt"],
      ["6", "Done"],
    ]);
    expect(JSON.parse(events[4]?.data ?? "")).toEqual({
      content: "坐不下！",
      node_is_finish: true,
      node_seq_id: "4",
      node_title: "Message",
    });
    expect(JSON.parse(events[6]?.data ?? "")).toEqual({
      error_code: 4000,
      error_message: "Request parameter error",
    });
    expect(events.at(-1)?.data).toBe("{}");
  });

  it("does not need blank lines between events (the stream_resume example)", async () => {
    const expected = [
      ev(
        "Message",
        String.raw`{"content":"{\"output\":[...]}","content_type":"text","cost":"0","node_is_finish":true,"node_seq_id":"0","node_title":"End","token":386}`,
        "0",
      ),
      ev("Done", "{}", "1"),
    ];
    expect(await parse(resumeExample)).toEqual(expected);
    expect(await parse(resumeExample.trimEnd())).toEqual(expected);
  });

  it("parses the recorded failed chat stream (coze-api.md §4.5)", async () => {
    const failed =
      'event:conversation.chat.failed\ndata:{"id":"7390342853760696354","conversation_id":"7390331532575195148","bot_id":"7374724495711502387","completed_at":1720698285,"failed_at":1720698286,"last_error":{"code":5000,"msg":"event interval error"},"status":"failed","usage":{"token_count":0,"output_count":0,"input_count":0}}\n';
    const [event, ...rest] = await parse(failed);
    expect(rest).toEqual([]);
    expect(event?.event).toBe("conversation.chat.failed");
    expect(JSON.parse(event?.data ?? "").last_error).toEqual({
      code: 5000,
      msg: "event interval error",
    });
  });
});

describe("SSE decoder: framing", () => {
  it("accepts fields with and without a space after the colon, stripping exactly one", async () => {
    expect(await parse("event:a\ndata:{}\n\nevent: b\ndata: {}\n\nevent:c\ndata:  x \n")).toEqual([
      ev("a", "{}"),
      ev("b", "{}"),
      ev("c", " x "),
    ]);
  });

  it("trims event names and ids but keeps data as sent", async () => {
    expect(await parse('id:  7 \nevent:   Message  \ndata: {"a": 1} \n')).toEqual([
      ev("Message", '{"a": 1} ', "7"),
    ]);
  });

  it("reads blank event names and ids as undefined", async () => {
    expect(await parse("id:\nevent: \ndata:{}\n")).toEqual([ev(undefined, "{}")]);
  });

  it("accepts LF, CRLF and CR line ends, and any mix of them", async () => {
    const expected = [ev("a", "1", "0"), ev("b", "2", "1")];
    const lines = ["id:0", "event:a", "data:1", "", "id:1", "event:b", "data:2", ""];
    for (const end of ["\n", "\r\n", "\r"]) {
      expect(await parse(lines.join(end))).toEqual(expected);
    }
    expect(await parse("id:0\r\nevent:a\rdata:1\n\r\nid:1\revent:b\ndata:2\r")).toEqual(expected);
  });

  it("dispatches on the data line, keeping the event name and id until a blank line", async () => {
    const events = await parse(
      "id:3\nevent:conversation.message.delta\ndata:1\ndata:2\nevent:done\ndata:3\n\ndata:4\n",
    );
    expect(events).toEqual([
      ev("conversation.message.delta", "1", "3"),
      ev("conversation.message.delta", "2", "3"),
      ev("done", "3", "3"),
      ev(undefined, "4"),
    ]);
  });

  it("yields an event as soon as its data line has arrived, before the stream goes on", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    async function* slow(): AsyncGenerator<string> {
      yield "event:conversation.message.delta\ndata:{}\n";
      await gate;
      yield "\n";
    }
    const events = decode(slow(), options);
    expect((await events.next()).value).toEqual(ev("conversation.message.delta", "{}"));
    release();
    expect(await events.next()).toEqual({ done: true, value: undefined });
  });

  it("ignores comments and retry lines", async () => {
    expect(await parse(": keep-alive\nretry: 3000\n:\nevent:PING\nretry:10\ndata:{}\n\n")).toEqual([
      ev("PING", "{}"),
    ]);
  });

  it("yields a bare JSON line as an event without name or id (a JSON error sent as a stream)", async () => {
    // js special-cases a stream whose whole body is `{"code":4101,...}` (coze-api.md §1.4, §10.1).
    const body = '{"code":4101,"msg":"The token you entered is incorrect."}';
    expect(await parse(body)).toEqual([ev(undefined, body)]);
    expect(await parse(`id:1\nevent:x\n${body}\n`)).toEqual([ev(undefined, body)]);
  });

  it("processes an unterminated last line at the end of the stream", async () => {
    expect(await parse('event:done\ndata:"[DONE]"')).toEqual([ev("done", '"[DONE]"')]);
    expect(await collect(source("event:done\nda", "ta:{}"))).toEqual([ev("done", "{}")]);
  });

  it("yields nothing for an empty body or a body of blank lines", async () => {
    expect(await collect(source())).toEqual([]);
    expect(await collect(source(new Uint8Array(0), "", "\n\r\n\r"))).toEqual([]);
  });

  it("skips a UTF-8 BOM at the start only, also when split across chunks or sent as text", async () => {
    const text = "\uFEFFevent:a\ndata:\uFEFF{}\n";
    const expected = [ev("a", "\uFEFF{}")];
    expect(await parse(text)).toEqual(expected);
    expect(await collect(source(...cut(text, 1, 2, 3, 4)))).toEqual(expected);
    expect(await collect(source(new Uint8Array(0), text))).toEqual(expected);
    expect(await parse("\uFEFF")).toEqual([]);
  });

  it("decodes a multi-byte character split between chunks", async () => {
    // 坐 is 3 bytes, 😀 is 4: cut inside each of them.
    const text = 'event:Message\ndata:{"content":"坐😀"}\n';
    const start = utf8.encode('event:Message\ndata:{"content":"').length;
    for (const at of [start + 1, start + 2, start + 4, start + 5, start + 6]) {
      expect(await collect(source(...cut(text, at)))).toEqual([
        ev("Message", '{"content":"坐😀"}'),
      ]);
    }
  });

  it("decodes any bytes cut anywhere as it decodes them whole (fast-check)", async () => {
    // Data lines of arbitrary bytes (invalid UTF-8 included, line ends left out), cut at
    // arbitrary offsets: split characters, ASCII chunk ends and held-back bytes all meet.
    const line = fc
      .uint8Array({ maxLength: 24 })
      .map((b) => b.filter((x) => x !== 0x0a && x !== 0x0d));
    const body = fc.array(line, { minLength: 1, maxLength: 6 }).map((lines) => {
      const parts = lines.flatMap((l) => [utf8.encode("data:"), l, utf8.encode("\n")]);
      const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.length;
      }
      return out;
    });
    await fc.assert(
      fc.asyncProperty(body, fc.array(fc.nat(), { maxLength: 8 }), async (bytes, offsets) => {
        const at = [...new Set(offsets.map((o) => o % (bytes.length + 1)))].sort((a, b) => a - b);
        const whole = await collect(source(bytes));
        expect(await collect(source(...cut(bytes, ...at)))).toEqual(whole);
        expect(whole.map((e) => e.data)).toEqual(
          new TextDecoder()
            .decode(bytes)
            .split("\n")
            .slice(0, -1)
            .map((l) => l.slice(5).replace(/^ /, "")),
        );
      }),
      { numRuns: 300 },
    );
  });

  it("accepts byte and text chunks mixed", async () => {
    expect(
      await collect(source(utf8.encode("event:a\nda"), "ta:1\n", utf8.encode("data:2"))),
    ).toEqual([ev("a", "1"), ev("a", "2")]);
  });
});

describe("SSE decoder: chunking", () => {
  const samples: [string, string][] = [
    ["the chat recording", chatRecording],
    ["the workflow recording with CRLF", workflowRecording.replaceAll("\n", "\r\n")],
    [
      "the workflow recording with CR and a BOM",
      `\uFEFF${workflowRecording.replaceAll("\n", "\r")}`,
    ],
    ["the resume example", resumeExample],
  ];

  for (const [name, text] of samples) {
    it(`gives the same events for ${name} whatever the chunk boundaries`, async () => {
      const bytes = utf8.encode(text);
      const expected = await parse(text);
      expect(expected.length).toBeGreaterThan(1);
      for (let at = 0; at <= bytes.length; at++) {
        const events = await collect(source(...cut(bytes, at)));
        if (JSON.stringify(events) !== JSON.stringify(expected)) {
          expect.fail(`different events when cut at byte ${at}`);
        }
      }
      const oneByteChunks = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
      expect(await collect(source(...oneByteChunks))).toEqual(expected);
    });
  }
});

describe("SSE decoder: failures", () => {
  it("fails with a protocol error on a line without a field name, without echoing it", async () => {
    const err = await protocolFailure(parse("event:a\nsecret-token-abc\ndata:{}\n"));
    expect(err.code).toBe("protocol");
    expect(err.step).toBe("chat.stream");
    expect(err.message).toBe("chat.stream: unexpected response");
    expect(err.message).not.toContain("secret");
  });

  it("fails with a protocol error on an unknown field", async () => {
    const err = await protocolFailure(
      parse("event:a\nauthorization: Bearer secret\n", { step: "workflow.stream" }),
    );
    expect(err.code).toBe("protocol");
    expect(err.message).toBe("workflow.stream: unexpected response");
  });

  it("yields the events before a malformed line, then fails", async () => {
    const events: SseEvent[] = [];
    const run = (async () => {
      for await (const event of decode(source("event:a\ndata:1\n\n<html>\ndata:2\n"), options)) {
        events.push(event);
      }
    })();
    expect((await protocolFailure(run)).code).toBe("protocol");
    expect(events).toEqual([ev("a", "1")]);
  });

  it("fails on a line over maxLineBytes without reading much past the limit", async () => {
    let pulled = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      const chunk = utf8.encode("x".repeat(100));
      yield utf8.encode("data:");
      for (;;) {
        pulled++;
        yield chunk;
      }
    }
    const err = await protocolFailure(
      collect(endless(), { step: "chat.stream", maxLineBytes: 1_000 }),
    );
    expect(err.code).toBe("protocol");
    expect(pulled).toBe(10);
  });

  it("counts the limit in UTF-8 bytes, for complete lines too", async () => {
    const opts = { step: "chat.stream", maxLineBytes: 1_000 };
    // 333 × 3 bytes + "data:" = 1 004 bytes in 338 UTF-16 code units.
    const long = `data:${"坐".repeat(333)}`;
    for (const body of [source(`${long}\n`), source(...cut(`${long}\n`, 500)), source(long)]) {
      expect((await protocolFailure(collect(body, opts))).code).toBe("protocol");
    }
    const fits = `data:${"坐".repeat(331)}x`;
    expect(utf8.encode(fits).length).toBe(999);
    expect(await collect(source(...cut(`${fits}\n${fits}`, 300, 700, 1_200)), opts)).toHaveLength(
      2,
    );
    expect(await collect(source(`data:${"x".repeat(995)}\n`), opts)).toHaveLength(1);
  });
});

describe("SSE decoder: performance", () => {
  it("parses a 10 MiB data line split into 64-byte chunks in linear time", async () => {
    const size = 10 * 1024 * 1024;
    const bytes = new Uint8Array(size + "data:\n".length).fill(0x61);
    bytes.set(utf8.encode("data:"), 0);
    bytes[bytes.length - 1] = 0x0a;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < bytes.length; i += 64) yield bytes.subarray(i, i + 64);
    }
    const started = performance.now();
    const events = await collect(chunks());
    const elapsed = performance.now() - started;
    expect(events).toHaveLength(1);
    expect(events[0]?.data.length).toBe(size);
    // A sanity bound, not a benchmark: a quadratic parser takes minutes here.
    expect(elapsed).toBeLessThan(5_000);
  });

  it("parses 10 000 events in order", async () => {
    const frames: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      frames.push(`id: ${i}\nevent: conversation.message.delta\ndata: {"content":"${i}"}\n\n`);
    }
    const bytes = utf8.encode(frames.join(""));
    // Chunks of an odd size, so boundaries fall everywhere in the frames.
    const events = await collect(
      source(
        ...Array.from({ length: Math.ceil(bytes.length / 4093) }, (_, i) =>
          bytes.subarray(i * 4093, (i + 1) * 4093),
        ),
      ),
    );
    expect(events).toHaveLength(10_000);
    events.forEach((event, i) => {
      if (event.id !== String(i) || event.data !== `{"content":"${i}"}`) {
        expect.fail(`event ${i} is wrong: ${JSON.stringify(event)}`);
      }
    });
    expect(events[9_999]?.event).toBe("conversation.message.delta");
  });
});
