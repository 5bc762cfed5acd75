import { describe, expect, it } from "vitest";
import { createManualClock } from "../../test/support/manual-clock.js";
import { type Caller, createTenant } from "../service/index.js";
import { createMemoryStore, StateError } from "../state/index.js";
import { chatCompletionFormat } from "./completion-format.js";
import { createInterruptReplies, type ReplyStore } from "./interrupt-replies.js";
import { parseChatCompletionRequest } from "./parse-request.js";
import type { LogFn, Turn } from "./turn.js";

const secret = Buffer.from("interrupt-replies-test-secret-0123456789");
const callerOf = (name: string): Caller => ({
  name,
  models: undefined,
  tenant: createTenant(secret, Buffer.alloc(32, name)),
});
const alice = callerOf("alice");
const bob = callerOf("bob");
const model = "workflow:7391000000000000003";
const ttlMs = 60_000;

type Logged = [string, string, Record<string, unknown> | undefined];

/** A turn of `body` (a chat completion request) for `caller`, its log lines in `logged`. */
function turnOf(body: object, caller = alice, logged: Logged[] = []): Turn {
  const meta = { id: "chatcmpl-1", model, created: 0 };
  const log: LogFn = (level, msg, fields) => {
    logged.push([level, msg, fields]);
  };
  return {
    request: parseChatCompletionRequest(JSON.stringify({ model, ...body }), undefined),
    caller,
    context: undefined,
    meta,
    format: chatCompletionFormat(meta, false),
    log,
  } as unknown as Turn;
}

const ask = (...messages: object[]) => ({ messages });
const u = (content: unknown) => ({ role: "user", content });
const a = (content: unknown) => ({ role: "assistant", content });
const interrupt = { event_id: "111.tag", type: 2, question: "Which city?" };

/** Runs `turn` to an interrupt (as the workflow producer writes it) and settles it. */
async function interrupted(turn: Turn, question = "Which city?", extras: object = {}) {
  turn.format.unary({ content: question }, "stop", undefined, {
    execute_id: "222.tag",
    interrupt: { ...interrupt, question },
    ...extras,
  });
  await turn.settle?.();
}

function setup(store?: ReplyStore) {
  const clock = createManualClock(1_700_000_000_000);
  const memory = createMemoryStore({ now: () => clock.now() });
  const replies = createInterruptReplies({ store: store ?? memory, ttlMs, now: () => clock.now() });
  return { clock, memory, replies };
}

describe("interrupt replies", () => {
  it("resumes the interrupt a reply answers, with its run and channel, once", async () => {
    const { replies } = setup();
    await interrupted(await replies.prepare(turnOf(ask(u("weather?"))), "workflow"));
    const reply = ask(u("weather?"), a("Which city?"), u("Paris"));
    const first = await replies.prepare(turnOf(reply), "workflow");
    expect(first.request.resume).toEqual({
      eventId: "111.tag",
      interruptType: 2,
      executeId: "222.tag",
      channel: "",
    });
    const again = await replies.prepare(turnOf(reply), "workflow");
    expect(again.request.resume).toBeUndefined();
  });

  it("matches the history whatever its system messages, whitespace, parts and empty turns", async () => {
    const { replies } = setup();
    const asked = ask({ role: "system", content: "It is 10:00." }, u("weather?"));
    await interrupted(await replies.prepare(turnOf(asked), "workflow"));
    const reply = ask(
      { role: "developer", content: "It is 10:05." },
      u([{ type: "text", text: " weather? " }]),
      a(""),
      a([{ type: "text", text: "Which city?\n" }]),
      u("Paris"),
    );
    const resumed = await replies.prepare(turnOf(reply), "workflow");
    expect(resumed.request.resume?.eventId).toBe("111.tag");
  });

  it("keeps each key, model and end user apart", async () => {
    const { replies } = setup();
    await interrupted(await replies.prepare(turnOf(ask(u("weather?"))), "workflow"));
    const reply = ask(u("weather?"), a("Which city?"), u("Paris"));
    for (const turn of [
      turnOf(reply, bob),
      turnOf({ ...reply, user: "end-user-2" }),
      turnOf({ ...reply, model: "workflow:7391000000000000001" }),
    ]) {
      expect((await replies.prepare(turn, "workflow")).request.resume).toBeUndefined();
    }
    expect((await replies.prepare(turnOf(reply), "workflow")).request.resume).toBeDefined();
  });

  it("gives one of two replies read at once the interrupt; the other starts a new run", async () => {
    const { replies } = setup();
    await interrupted(await replies.prepare(turnOf(ask(u("weather?"))), "workflow"));
    const reply = ask(u("weather?"), a("Which city?"), u("Paris"));
    const turns = await Promise.all(
      [1, 2, 3].map(() => replies.prepare(turnOf(reply), "workflow")),
    );
    expect(turns.filter((t) => t.request.resume !== undefined)).toHaveLength(1);
  });

  it("forgets an interrupt after ttlMs, even when the store still holds it", async () => {
    const { clock, memory } = setup();
    // A store whose own expiry lags (Redis keeps its own time): the stored time decides.
    const lagging: ReplyStore = {
      get: (key) => memory.get(key),
      set: (key, value) => memory.set(key, value, 10 * ttlMs),
      setIfAbsent: (key, value, ms) => memory.setIfAbsent(key, value, ms),
      delete: (key) => memory.delete(key),
    };
    const replies = createInterruptReplies({ store: lagging, ttlMs, now: () => clock.now() });
    await interrupted(await replies.prepare(turnOf(ask(u("weather?"))), "workflow"));
    await clock.advance(ttlMs);
    const reply = ask(u("weather?"), a("Which city?"), u("Paris"));
    expect((await replies.prepare(turnOf(reply), "workflow")).request.resume).toBeUndefined();
  });

  it("ignores a value it did not write and a question that was never shown", async () => {
    const { memory, replies } = setup();
    const keys: string[] = [];
    const spy: ReplyStore = {
      ...memory,
      set(key, value, ms) {
        keys.push(key);
        return memory.set(key, value, ms);
      },
    };
    const watched = createInterruptReplies({ store: spy, ttlMs });
    await interrupted(await watched.prepare(turnOf(ask(u("weather?"))), "workflow"), "   ");
    expect(keys).toEqual([]);
    await interrupted(await watched.prepare(turnOf(ask(u("weather?"))), "workflow"));
    for (const junk of ["{", "[]", '{"kind":"interrupt"}', '{"kind":"other","at":1}']) {
      await memory.set(keys[0] as string, junk, ttlMs);
      const reply = ask(u("weather?"), a("Which city?"), u("Paris"));
      expect((await replies.prepare(turnOf(reply), "workflow")).request.resume).toBeUndefined();
    }
  });

  it("leaves bots, explicit chatflow conversations and a zero ttl alone", async () => {
    const { memory } = setup();
    const off = createInterruptReplies({ store: memory, ttlMs: 0 });
    const turn = turnOf(ask(u("hi")));
    expect(await off.prepare(turn, "workflow")).toBe(turn);
    const { replies } = setup();
    expect(await replies.prepare(turn, "bot")).toBe(turn);
    const named = turnOf({ ...ask(u("hi")), conversation_id: "123" });
    expect(await replies.prepare(named, "chatflow")).toBe(named);
  });

  it("continues a chatflow's conversation from the reply to its answer", async () => {
    const { replies } = setup();
    const first = await replies.prepare(turnOf(ask(u("hello"))), "chatflow");
    const stream = first.format.stream();
    stream.content("Hello");
    stream.content(" there");
    stream.finish("stop", { conversation_id: "333.tag" }, undefined);
    await first.settle?.();
    const reply = await replies.prepare(
      turnOf(ask(u("hello"), a("Hello there"), u("more"))),
      "chatflow",
    );
    expect(reply.request.conversationId).toBe("333.tag");
  });

  it("starts a new run, and logs why without a key or history, when the store fails", async () => {
    const down: ReplyStore = {
      get: () => Promise.reject(new StateError("unavailable", "state store unreachable")),
      set: () => Promise.reject(new StateError("timeout", "state store too slow")),
      setIfAbsent: () => Promise.reject(new StateError("unavailable", "unreachable")),
      delete: () => Promise.reject(new StateError("unavailable", "unreachable")),
    };
    const { replies } = setup(down);
    const logged: Logged[] = [];
    const asked = await replies.prepare(turnOf(ask(u("weather?")), alice, logged), "workflow");
    await interrupted(asked);
    const reply = turnOf(ask(u("weather?"), a("Which city?"), u("Paris")), alice, logged);
    expect((await replies.prepare(reply, "workflow")).request.resume).toBeUndefined();
    expect(logged.map(([level, , fields]) => [level, fields])).toEqual([
      ["warn", { error: "StateError", code: "timeout" }],
      ["warn", { error: "StateError", code: "unavailable" }],
    ]);
    expect(JSON.stringify(logged)).not.toMatch(/weather|Paris|ir:/);
  });
});
