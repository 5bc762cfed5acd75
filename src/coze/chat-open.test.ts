import { describe, expect, it } from "vitest";
import { createManualClock } from "../../test/support/manual-clock.js";
import { openChatTurn } from "./chat-open.js";
import type { ChatStreamState } from "./chat-stream.js";
import { CozeError } from "./errors.js";
import type { StreamResponse } from "./event-stream.js";
import type { SseEvent } from "./sse.js";

const created: SseEvent = {
  id: undefined,
  event: "conversation.chat.created",
  data: JSON.stringify({ id: "7000000000000000002", conversation_id: "7000000000000000001" }),
};

/** An open stream whose events the test pushes; `closed` tells whether it was released. */
function pushableStream() {
  let queue: SseEvent[] = [];
  let wake: (() => void) | undefined;
  const stream = {
    status: 200,
    logId: undefined,
    closed: false,
    close() {
      stream.closed = true;
      wake?.();
      return Promise.resolve();
    },
    take(out: SseEvent[]) {
      out.push(...queue);
      queue = [];
      return stream.closed;
    },
    wait() {
      return queue.length > 0 || stream.closed
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            wake = resolve;
          });
    },
    push(event: SseEvent) {
      queue.push(event);
      wake?.();
    },
  };
  return stream satisfies StreamResponse;
}

/** A turn whose request is held until the test opens its stream (or fails it). */
function setup(learnIdTimeoutMs = 1_000) {
  const clock = createManualClock();
  const caller = new AbortController();
  const state: ChatStreamState = { conversationId: undefined, chatId: undefined, finished: false };
  const abandoned: ChatStreamState[] = [];
  let upstream: AbortSignal | undefined;
  let answer: (stream: StreamResponse) => void = () => {};
  let fail: (err: unknown) => void = () => {};
  const turn = openChatTurn({
    step: "chat.stream",
    send: (signal) => {
      upstream = signal;
      return new Promise((resolve, reject) => {
        answer = resolve;
        fail = reject;
      });
    },
    state,
    signal: caller.signal,
    clock,
    abandon: () => abandoned.push({ ...state }),
    learnIdTimeoutMs,
  });
  const outcome = turn.then(
    () => "opened",
    (e: unknown) => e,
  );
  return {
    clock,
    caller,
    abandoned,
    outcome,
    upstream: () => upstream as AbortSignal,
    answer: (s: StreamResponse) => answer(s),
    fail: (e: unknown) => fail(e),
  };
}

describe("a chat turn its caller abandons before Coze named the chat", () => {
  it("fails for the caller at once, reads on until the chat id comes, then cancels it", async () => {
    const t = setup();
    t.caller.abort();
    const err = await t.outcome;
    expect(err).toBeInstanceOf(CozeError);
    expect((err as CozeError).code).toBe("canceled");
    // The request was not dropped: Coze may have created the chat.
    expect(t.upstream().aborted).toBe(false);
    const stream = pushableStream();
    t.answer(stream);
    await t.clock.advance(0);
    expect(t.abandoned).toEqual([]);
    stream.push({ id: undefined, event: "ping", data: "{}" });
    stream.push(created);
    await t.clock.advance(0);
    expect(t.abandoned).toEqual([
      { conversationId: "7000000000000000001", chatId: "7000000000000000002", finished: false },
    ]);
    expect(stream.closed).toBe(true);
    expect(t.clock.pendingSleeps()).toBe(0);
  });

  it("drops the request when Coze names no chat in time, and cancels nothing", async () => {
    const t = setup(1_000);
    t.caller.abort();
    await t.outcome;
    await t.clock.advance(999);
    expect(t.upstream().aborted).toBe(false);
    await t.clock.advance(1);
    expect(t.upstream().aborted).toBe(true);
    t.fail(new CozeError("canceled", "chat.stream: canceled", { step: "chat.stream" }));
    await t.clock.advance(0);
    expect(t.abandoned).toEqual([
      { conversationId: undefined, chatId: undefined, finished: false },
    ]);
  });

  it("reports a caller's deadline as timeout, not canceled", async () => {
    const t = setup();
    t.caller.abort(new DOMException("deadline exceeded", "TimeoutError"));
    expect(((await t.outcome) as CozeError).code).toBe("timeout");
  });
});

describe("a chat turn whose stream opened", () => {
  it("aborts the upstream request with the caller's reason when the caller goes away", async () => {
    const t = setup();
    t.answer(pushableStream());
    expect(await t.outcome).toBe("opened");
    const reason = new Error("gone");
    t.caller.abort(reason);
    expect(t.upstream().reason).toBe(reason);
  });
});
