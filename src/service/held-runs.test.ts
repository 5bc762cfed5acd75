import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createManualClock } from "../../test/support/manual-clock.js";
import { CozeError } from "../coze/errors.js";
import type { WorkflowEvent } from "../coze/workflow-stream.js";
import { GatewayError } from "./errors.js";
import { createHeldRuns, type HeldTick, isHeldRunId } from "./held-runs.js";
import { createTenant } from "./tenant.js";

const secret = randomBytes(32);
const keyA = createTenant(secret, Buffer.alloc(32, 1));
const keyB = createTenant(secret, Buffer.alloc(32, 2));

/** A stream whose events the test pushes; `end()` or `fail()` finishes it. */
function scripted() {
  const queue: (WorkflowEvent | Error | null)[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  const push = (e: WorkflowEvent | Error | null) => {
    queue.push(e);
    wake?.();
  };
  async function* events(signal?: AbortSignal): AsyncGenerator<WorkflowEvent, void> {
    // Like an upstream stream: aborting its signal breaks it.
    signal?.addEventListener("abort", () => push(new Error("aborted")), { once: true });
    try {
      for (;;) {
        const next = queue.shift();
        if (next === undefined) {
          await new Promise<void>((r) => {
            wake = r;
          });
          continue;
        }
        if (next === null) return;
        if (next instanceof Error) throw next;
        yield next;
      }
    } finally {
      closed = true;
    }
  }
  const message = (content: string): WorkflowEvent => ({
    type: "message",
    seq: 0,
    content,
    contentType: "text",
    nodeTitle: "End",
    nodeSeqId: "0",
    nodeIsFinish: true,
    nodeId: "900001",
    nodeExecuteUuid: undefined,
    usage: { tokenCount: 3, inputCount: 1, outputCount: 2 },
    ext: undefined,
  });
  return {
    events,
    message: (content: string) => push(message(content)),
    done: () => push({ type: "done", seq: 1, debugUrl: "https://x/y", executeId: "7" }),
    fail: (err: Error) => push(err),
    get closed() {
      return closed;
    },
  };
}

const hold = (
  held: ReturnType<typeof createHeldRuns>,
  owner = keyA,
  s = scripted(),
  signal = new AbortController().signal,
) =>
  held.hold({
    owner,
    channel: "c",
    workflowId: "w",
    signal,
    open: async (own) => s.events(own),
  });

describe("held runs", () => {
  it("makes ids Coze never does, readable by their owner only", async () => {
    const held = createHeldRuns({ clock: createManualClock(0) });
    const s = scripted();
    const run = await hold(held, keyA, s);
    expect(isHeldRunId(run.id)).toBe(true);
    expect(isHeldRunId("7404830425073352713")).toBe(false);
    expect(held.get(keyA, run.id)).toBe(run);
    expect(held.get(keyB, run.id)).toBeUndefined();
    s.message('{"output":"a"}');
    s.done();
    await run.ended;
    expect(run.status).toBe("success");
    expect(run.output?.value).toEqual({ output: "a" });
    expect(run.usage?.tokenCount).toBe(3);
    expect(held.running).toBe(0);
  });

  it("holds nothing when the stream cannot be opened", async () => {
    const held = createHeldRuns({ clock: createManualClock(0), maxRunning: 1 });
    const refused = new CozeError("rate_limited", "x", { step: "workflow.stream" });
    await expect(
      held.hold({
        owner: keyA,
        channel: "c",
        workflowId: "w",
        signal: new AbortController().signal,
        open: async () => {
          throw refused;
        },
      }),
    ).rejects.toBe(refused);
    expect(held.running).toBe(0);
    await hold(held);
    expect(held.running).toBe(1);
    held.close();
  });

  it("refuses a run past the process's and the key's limits, with a retry-after", async () => {
    const held = createHeldRuns({
      clock: createManualClock(0),
      maxRunning: 3,
      maxRunningPerKey: 2,
    });
    await hold(held, keyA);
    await hold(held, keyA);
    const perKey = await hold(held, keyA).catch((e: unknown) => e);
    expect(perKey).toBeInstanceOf(GatewayError);
    expect((perKey as GatewayError).code).toBe("resource_exhausted");
    expect((perKey as GatewayError).retryAfterMs).toBe(5_000);
    await hold(held, keyB);
    await expect(hold(held, keyB)).rejects.toBeInstanceOf(GatewayError);
    held.close();
    expect(held.running).toBe(0);
  });

  it("reads a running run every interval, and at once when it ends; max_polls ends the watch", async () => {
    const clock = createManualClock(0);
    const held = createHeldRuns({ clock });
    const s = scripted();
    const run = await hold(held, keyA, s);
    const ticks: HeldTick[] = [];
    const watching = (async () => {
      for await (const t of held.watch(run, new AbortController().signal, {
        intervalMs: 1_000,
        maxPolls: 10,
      })) {
        ticks.push({ ...t });
      }
    })();
    await clock.advance(1_000);
    await clock.advance(1_000);
    expect(ticks.map((t) => [t.poll, t.done])).toEqual([
      [1, false],
      [2, false],
    ]);
    s.message("{}");
    s.done();
    await watching;
    // The end is read at once, not at the next interval.
    expect(clock.now()).toBe(2_000);
    expect(ticks.at(-1)).toMatchObject({ poll: 3, done: true });
    expect(clock.pendingSleeps()).toBe(0);

    const stuck = await hold(held);
    const giveUp = (async () => {
      for await (const _ of held.watch(stuck, new AbortController().signal, {
        intervalMs: 10,
        maxPolls: 2,
        immediate: true,
      })) {
        // reads
      }
    })().catch((e: unknown) => e);
    await clock.advance(10);
    const err = await giveUp;
    expect((err as CozeError).code).toBe("still_running");
    held.close();
  });

  it("ends a watch whose caller left, and leaves the run running", async () => {
    const clock = createManualClock(0);
    const held = createHeldRuns({ clock });
    const run = await hold(held);
    const leave = new AbortController();
    const watching = (async () => {
      for await (const _ of held.watch(run, leave.signal, { intervalMs: 1_000, maxPolls: 5 })) {
        // waits
      }
    })().catch((e: unknown) => e);
    leave.abort();
    expect(((await watching) as CozeError).code).toBe("canceled");
    expect(run.status).toBe("running");
    expect(clock.pendingSleeps()).toBe(0);
    held.close();
  });

  it("fails a run whose stream breaks, and every running run at close, releasing the streams", async () => {
    const held = createHeldRuns({ clock: createManualClock(0) });
    const broken = scripted();
    const run = await hold(held, keyA, broken);
    broken.fail(new CozeError("quota_exceeded", "x", { step: "workflow.stream", cozeCode: 4028 }));
    await run.ended;
    expect(run.status).toBe("fail");
    expect(run.error?.cozeCode).toBe(4028);
    const open = scripted();
    const other = await hold(held, keyA, open);
    held.close();
    await other.ended;
    expect(other.status).toBe("fail");
    expect(other.error?.code).toBe("canceled");
    await expect.poll(() => open.closed).toBe(true);
    expect(broken.closed).toBe(true);
  });

  it("forgets an ended run after an hour, and the oldest beyond maxEnded", async () => {
    const clock = createManualClock(0);
    const held = createHeldRuns({ clock, maxEnded: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const s = scripted();
      const run = await hold(held, keyA, s);
      s.message("{}");
      s.done();
      await run.ended;
      ids.push(run.id);
    }
    expect(held.get(keyA, ids[0] as string)).toBeUndefined();
    expect(held.get(keyA, ids[1] as string)).toBeDefined();
    await clock.advance(3_600_000);
    expect(held.get(keyA, ids[2] as string)).toBeUndefined();
  });
});
