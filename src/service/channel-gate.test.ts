import { describe, expect, it } from "vitest";
import { createManualClock } from "../../test/support/manual-clock.js";
import {
  createChannelGate,
  type GateRefusal,
  gated,
  gatedEvents,
  gatedOpen,
} from "./channel-gate.js";
import { GatewayError } from "./errors.js";

function setup(maxConcurrent: number, queue: number, queueTimeoutMs = 1000) {
  const clock = createManualClock(0);
  const refused: GateRefusal[] = [];
  const gate = createChannelGate("main", { maxConcurrent, queue, queueTimeoutMs }, clock, (r) =>
    refused.push(r),
  );
  return { clock, gate, refused };
}

const never = new AbortController().signal;

/** Settles promises that are already due. */
const tick = () => new Promise<void>((r) => setImmediate(r));

describe("a channel's cap on calls to Coze", () => {
  it("lets max_concurrent calls in, queues the next in order, and hands each freed slot on", async () => {
    const { gate } = setup(2, 10);
    const a = await gate.enter(never);
    const b = await gate.enter(never);
    const order: string[] = [];
    const c = gate.enter(never).then((release) => {
      order.push("c");
      return release;
    });
    const d = gate.enter(never).then((release) => {
      order.push("d");
      return release;
    });
    await tick();
    expect([gate.active, gate.waiting, order]).toEqual([2, 2, []]);
    b();
    b(); // a second call of one release frees nothing more
    await tick();
    expect([gate.active, gate.waiting, order]).toEqual([2, 1, ["c"]]);
    a();
    await tick();
    expect(order).toEqual(["c", "d"]);
    (await c)();
    (await d)();
    expect([gate.active, gate.waiting]).toEqual([0, 0]);
  });

  it("refuses at once when the queue is full, as channel_busy", async () => {
    const { gate, refused } = setup(1, 1);
    await gate.enter(never);
    const queued = gate.enter(never);
    const err = await gate.enter(never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({
      code: "channel_busy",
      message: "channel main is busy: 1 calls to Coze in flight and 1 waiting; try again shortly",
      retryAfterMs: 1000,
      limit: { kind: "channel", headers: {} },
    });
    expect(refused).toEqual(["queue_full"]);
    expect(gate.waiting).toBe(1);
    void queued;
  });

  it("gives up waiting after the queue timeout", async () => {
    const { clock, gate, refused } = setup(1, 5, 1000);
    const held = await gate.enter(never);
    const waiting = gate.enter(never).catch((e: unknown) => e);
    await clock.advance(999);
    expect(gate.waiting).toBe(1);
    await clock.advance(1);
    expect(await waiting).toMatchObject({
      code: "channel_busy",
      message: "channel main is busy: no call to Coze ended within 1000 ms; try again shortly",
    });
    expect([gate.waiting, refused]).toEqual([0, ["queue_timeout"]]);
    held();
    expect(gate.active).toBe(0);
  });

  it("stops waiting when the call's signal aborts (its deadline), with the signal's reason", async () => {
    const { clock, gate } = setup(1, 5);
    await gate.enter(never);
    const deadline = new AbortController();
    const waiting = gate.enter(deadline.signal).catch((e: unknown) => e);
    const reason = new Error("deadline exceeded");
    deadline.abort(reason);
    expect(await waiting).toBe(reason);
    expect(gate.waiting).toBe(0);
    expect(clock.pendingSleeps()).toBe(0);
  });

  it("holds a slot for a unary call's life and for a stream's, however they end", async () => {
    const { gate } = setup(1, 0);
    await expect(
      gated(gate, never, async () => {
        expect(gate.active).toBe(1);
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(gate.active).toBe(0);
    async function* three() {
      yield 1;
      yield 2;
      yield 3;
    }
    const events = gatedEvents(gate, never, three);
    expect(gate.active).toBe(0); // taken at the first read, not before
    expect((await events.next()).value).toBe(1);
    expect(gate.active).toBe(1);
    await events.return(undefined);
    expect(gate.active).toBe(0);
  });

  it("holds a slot for an opened stream until it ends, is returned unread, or fails to open", async () => {
    const { gate } = setup(1, 0);
    await expect(
      gatedOpen(gate, never, () => Promise.reject(new Error("refused"))),
    ).rejects.toThrow("refused");
    expect(gate.active).toBe(0);
    const closed: string[] = [];
    const open = (name: string) => async () =>
      (async function* () {
        try {
          yield 1;
          yield 2;
        } finally {
          closed.push(name);
        }
      })();
    const read = await gatedOpen(gate, never, open("read"));
    expect(gate.active).toBe(1); // taken before the stream opens
    await expect(gatedOpen(gate, never, open("refused"))).rejects.toBeInstanceOf(GatewayError);
    const values: number[] = [];
    for await (const v of read) values.push(v);
    expect(values).toEqual([1, 2]);
    expect([gate.active, closed]).toEqual([0, ["read"]]);
    // Returned before its first read (a caller gone while the stream opened): closed, slot free.
    await (await gatedOpen(gate, never, open("unread"))).return(undefined);
    expect([gate.active, closed]).toEqual([0, ["read"]]);
    const started = await gatedOpen(gate, never, open("left"));
    await started.next();
    await started.return(undefined);
    expect([gate.active, closed]).toEqual([0, ["read", "left"]]);
  });
});
