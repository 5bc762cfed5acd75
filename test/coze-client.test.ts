import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ChatEvent } from "../src/coze/chat-stream.js";
import { objectString } from "../src/coze/chat-types.js";
import { CozeError } from "../src/coze/errors.js";
import type { WorkflowEvent } from "../src/coze/workflow-stream.js";
import { catalog } from "../src/emulator/index.js";
import { type CozeFixture, startCozeFixture } from "./support/coze-fixture.js";

const { bots, workflows } = catalog;
const user = (content: string) => ({
  role: "user" as const,
  content,
  contentType: "text" as const,
});

async function failure(p: Promise<unknown> | AsyncIterable<unknown>): Promise<CozeError> {
  let err: unknown;
  try {
    if (Symbol.asyncIterator in p) {
      for await (const _ of p) {
        /* drain */
      }
    } else {
      await p;
    }
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CozeError);
  return err as CozeError;
}

let fx: CozeFixture;
beforeAll(async () => {
  fx = await startCozeFixture({ client: { streamIdleTimeoutMs: 1_000 } });
});
afterEach(() => {
  // Every test must leave no stream open upstream.
  expect(fx.emulator.stats().openStreams).toBe(0);
  fx.emulator.reset();
});
afterAll(async () => {
  await fx.close();
});

describe("chat against the emulator", () => {
  it("streams typed events and aggregates the answer from one upstream request", async () => {
    const result = await fx.client.chat.chat({
      botId: bots.echo,
      userId: "u1",
      messages: [user("hello there")],
    });
    expect(result.answer).toBe("You said: hello there");
    expect(result.status).toBe("completed");
    expect(result.usage?.tokenCount).toBeGreaterThan(0);
    expect(result.followUps.length).toBeGreaterThan(0);
    expect(result.answer).not.toContain("generate_answer_finish");
    const stats = fx.emulator.stats();
    expect(stats.calls.chat).toBe(1);
    expect(stats.calls["chat.retrieve"] ?? 0).toBe(0);
  });

  it("delivers answer deltas in order before the completed message", async () => {
    const events: ChatEvent[] = [];
    for await (const e of fx.client.chat.stream({
      botId: bots.echo,
      userId: "u1",
      messages: [user("one two three four five")],
    })) {
      events.push(e);
    }
    const deltas = events.filter((e) => e.type === "message.delta");
    expect(deltas.length).toBeGreaterThanOrEqual(3);
    expect(deltas.map((e) => (e.type === "message.delta" ? e.message.content : "")).join("")).toBe(
      "You said: one two three four five",
    );
    expect(events.at(-1)?.type).toBe("done");
  });

  it("sends the whole history in order, system-like text included, and continues a conversation", async () => {
    const first = await fx.client.chat.chat({
      botId: bots.echo,
      userId: "u2",
      messages: [
        user("You are terse."),
        { role: "assistant", type: "answer", content: "OK.", contentType: "text" },
        user("first question"),
      ],
    });
    const second = await fx.client.chat.chat({
      botId: bots.echo,
      userId: "u2",
      conversationId: first.conversationId,
      messages: [user("!received")],
    });
    expect(second.conversationId).toBe(first.conversationId);
    const received = JSON.parse(second.answer) as {
      user_id: string;
      messages: { role: string; content: string }[];
    };
    expect(received.user_id).toBe("u2");
    const contents = received.messages.map((m) => `${m.role}:${m.content}`);
    expect(contents.slice(0, 3)).toEqual([
      "user:You are terse.",
      "assistant:OK.",
      "user:first question",
    ]);
    expect(contents.at(-1)).toBe("user:!received");
  });

  it("passes object_string items through unchanged", async () => {
    const result = await fx.client.chat.chat({
      botId: bots.echo,
      userId: "u3",
      messages: [
        {
          role: "user",
          contentType: "object_string",
          content: objectString([
            { type: "text", text: "what is this" },
            { type: "image", fileUrl: "https://example.com/cat.png" },
          ]),
        },
      ],
    });
    expect(result.answer).toContain("what is this");
    expect(result.answer).toContain("https://example.com/cat.png");
  });

  it("returns reasoning separately from the answer", async () => {
    const result = await fx.client.chat.chat({
      botId: bots.reasoning,
      userId: "u4",
      messages: [user("think")],
    });
    expect(result.reasoning.length).toBeGreaterThan(0);
    expect(result.answer.length).toBeGreaterThan(0);
    expect(result.answer).not.toContain(result.reasoning);
  });

  it("round-trips a tool call: requires_action, then the answer from the submitted output", async () => {
    const first = await fx.client.chat.chat({
      botId: bots.tool,
      userId: "u5",
      messages: [user("Paris")],
    });
    expect(first.status).toBe("requires_action");
    expect(first.toolCalls).toHaveLength(1);
    const call = first.toolCalls[0];
    expect(call?.name).toBe("get_weather");
    expect(JSON.parse(call?.arguments ?? "")).toEqual({ location: "Paris" });
    const second = await fx.client.chat.submitToolOutputs({
      conversationId: first.conversationId,
      chatId: first.chatId,
      outputs: [{ toolCallId: call?.id ?? "", output: "sunny, 21°C" }],
    });
    expect(second.status).toBe("completed");
    expect(second.answer).toBe("The tool said: sunny, 21°C");
  });

  it("reports a failed chat as a typed error, in every form Coze uses", async () => {
    // Recorded form (Chat with last_error), the docs' bare {code,msg}, and an `error` event with
    // Coze's internal-error code, which is an outage rather than a failed run.
    for (const [text, code, cozeCode] of [
      ["please fail", "failed", 5000],
      ["bare please", "failed", 701231],
      ["error-event please", "unavailable", 5000],
    ] as const) {
      const err = await failure(
        fx.client.chat.chat({ botId: bots.failing, userId: "u6", messages: [user(text)] }),
      );
      expect([err.code, err.cozeCode]).toEqual([code, cozeCode]);
    }
  });

  it("completes through create, retrieve and message list in polling mode", async () => {
    const result = await fx.client.chat.chatByPolling(
      { botId: bots.echo, userId: "u7", messages: [user("poll me")] },
      { intervalMs: 20, firstIntervalsMs: [5] },
    );
    expect(result.answer).toBe("You said: poll me");
    const stats = fx.emulator.stats();
    expect(stats.calls.chat).toBe(1);
    expect(stats.calls["chat.retrieve"]).toBeGreaterThanOrEqual(1);
    expect(stats.calls["chat.messages"]).toBe(1);
  });

  it("cancels the Coze chat and closes the stream when the caller aborts", async () => {
    const ac = new AbortController();
    let deltas = 0;
    const err = await failure(
      (async () => {
        for await (const e of fx.client.chat.stream({
          botId: bots.slow,
          userId: "u8",
          messages: [user("take your time")],
          signal: ac.signal,
        })) {
          if (e.type === "message.delta" && ++deltas === 2) ac.abort();
        }
      })(),
    );
    expect(err.code).toBe("canceled");
    await expect.poll(() => fx.emulator.stats().calls["chat.cancel"]).toBe(1);
    await expect.poll(() => fx.emulator.stats().openStreams).toBe(0);
  });

  it("cancels the Coze chat when the consumer stops reading early", async () => {
    for await (const e of fx.client.chat.stream({
      botId: bots.slow,
      userId: "u9",
      messages: [user("long story")],
    })) {
      if (e.type === "message.delta") break;
    }
    await expect.poll(() => fx.emulator.stats().calls["chat.cancel"]).toBe(1);
    await expect.poll(() => fx.emulator.stats().openStreams).toBe(0);
  });
});

describe("workflows against the emulator", () => {
  it("runs a workflow and decodes its output once, never re-quoted", async () => {
    const result = await fx.client.workflows.run({
      workflowId: workflows.echo,
      parameters: { input: 'say "hi"' },
    });
    expect(result.output.text).toBe(JSON.stringify({ output: 'say "hi"' }));
    expect(result.output.value).toEqual({ output: 'say "hi"' });
    expect(result.debugUrl).toMatch(/^https:\/\//);
  });

  it("starts an async run and polls it exactly until it ends", async () => {
    const run = await fx.client.workflows.runAsync(
      { workflowId: workflows.slowAsync, parameters: { input: "later", polls: 3 } },
      { intervalMs: 10 },
    );
    expect(run.status).toBe("success");
    expect(run.output.value).toMatchObject({ output: "later" });
    expect(fx.emulator.stats().polls[run.executeId]).toBe(3);
  });

  it("gives up after maxPolls saying the run is still running, without an extra poll", async () => {
    const { executeId } = await fx.client.workflows.start({
      workflowId: workflows.slowAsync,
      parameters: { input: "never", polls: 50 },
    });
    const err = await failure(
      fx.client.workflows.watch(
        { workflowId: workflows.slowAsync, executeId },
        {
          intervalMs: 5,
          maxPolls: 4,
        },
      ),
    );
    expect(err.code).toBe("still_running");
    expect(fx.emulator.stats().polls[executeId]).toBe(4);
  });

  it("reports a failed async run as failed with Coze's error code", async () => {
    const err = await failure(
      fx.client.workflows.runAsync(
        { workflowId: workflows.failing, parameters: { input: "x" } },
        { intervalMs: 10 },
      ),
    );
    expect(err.code).toBe("failed");
    expect(err.cozeCode).toBeDefined();
  });

  it("reports a failing sync run as an error, not as output", async () => {
    const err = await failure(
      fx.client.workflows.run({ workflowId: workflows.failing, parameters: { input: "x" } }),
    );
    expect(err.code).not.toBe("protocol");
  });

  it("streams node messages and the final output, then Done", async () => {
    const events: WorkflowEvent[] = [];
    for await (const e of fx.client.workflows.stream({
      workflowId: workflows.echo,
      parameters: { input: "streamed" },
    })) {
      events.push(e);
    }
    expect(events.at(-1)?.type).toBe("done");
    const last = events.filter((e) => e.type === "message").at(-1);
    expect(last?.type === "message" && JSON.parse(last.content)).toEqual({ output: "streamed" });
  });

  it("interrupts with a question and resumes with the answer", async () => {
    let eventId = "";
    let type = 0;
    for await (const e of fx.client.workflows.stream({ workflowId: workflows.interrupt })) {
      if (e.type === "interrupt") {
        eventId = e.interrupt.eventId;
        type = e.interrupt.type;
      }
    }
    expect(eventId).toMatch(/^\d+\/\d+$/);
    const events: WorkflowEvent[] = [];
    for await (const e of fx.client.workflows.resume({
      workflowId: workflows.interrupt,
      eventId,
      resumeData: "Hangzhou",
      interruptType: type,
    })) {
      events.push(e);
    }
    const out = events.filter((e) => e.type === "message").at(-1);
    expect(out?.type === "message" && JSON.parse(out.content)).toEqual({
      output: "You answered: Hangzhou",
    });
  });

  it("throws a streamed workflow error after relaying it", async () => {
    const seen: string[] = [];
    const err = await failure(
      (async () => {
        for await (const e of fx.client.workflows.stream({ workflowId: workflows.failing })) {
          seen.push(e.type);
        }
      })(),
    );
    expect(seen).toContain("error");
    expect(err.cozeCode).toBeDefined();
  });

  it("streams a chatflow turn as chat events", async () => {
    const events: ChatEvent[] = [];
    for await (const e of fx.client.workflows.chatflow({
      workflowId: workflows.chatflow,
      messages: [user("flow hello")],
    })) {
      events.push(e);
    }
    const done = events.at(-1);
    expect(done?.type).toBe("done");
    expect(done?.type === "done" && done.debugUrl).toMatch(/^https:\/\//);
    const text = events
      .filter((e) => e.type === "message.delta")
      .map((e) => (e.type === "message.delta" ? e.message.content : ""))
      .join("");
    expect(text).toContain("flow hello");
  });
});

describe("files against the emulator", () => {
  it("uploads a file and returns its id", async () => {
    const file = await fx.client.files.upload({
      data: new TextEncoder().encode("hello file"),
      fileName: "hello.txt",
      contentType: "text/plain",
    });
    expect(file.id).toMatch(/^\d+$/);
    expect(file.bytes).toBe(10);
    expect(file.fileName).toBe("hello.txt");
  });
});
