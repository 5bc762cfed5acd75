import { type Client, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cozeIdOf } from "../../test/support/handles.js";
import { createPools, type Pools } from "../coze/pools.js";
import { createTokenCache } from "../coze/token-cache.js";
import { type Demo, startDemo } from "../demo.js";
import { catalog } from "../emulator/index.js";
import { RunMode, WorkflowService } from "../gen/cozegateway/v1/workflow_pb.js";
import { createChannels } from "./channels.js";
import { createServices } from "./services.js";

let demo: Demo;
let pools: Pools;
let wf: Client<typeof WorkflowService>;
const workflowId = catalog.workflows.slowAsync;

beforeAll(async () => {
  demo = await startDemo({ deltaMs: 0, pollIntervalMs: 20 });
  pools = createPools();
  const channels = createChannels({
    channels: demo.config.channels,
    tokens: createTokenCache({ pools }),
    pools,
  });
  wf = createClient(
    WorkflowService,
    createRouterTransport(createServices({ config: demo.config, channels })),
  );
});
afterAll(async () => {
  await pools.destroy();
  await demo.close();
});

async function startRun(polls: number) {
  const res = await wf.runWorkflow({
    workflowId,
    mode: RunMode.ASYNC,
    parameters: { input: "w", polls },
  });
  return res.executeId;
}

async function watchToEnd(executeId: string, signal?: AbortSignal) {
  const events: string[] = [];
  for await (const ev of wf.watchWorkflow({ workflowId, executeId }, { signal }))
    events.push(ev.event.case ?? "");
  return events;
}

describe("async polling budget", () => {
  it("polls each run once per interval however many watchers it has", async () => {
    const runs = await Promise.all([3, 3, 4, 5].map(startRun));
    const watchers = runs.flatMap((id) => Array.from({ length: 10 }, () => watchToEnd(id)));
    const results = await Promise.all(watchers);
    for (const events of results) expect(events.at(-1)).toBe("result");
    // Each run finishes on exactly its `polls`-th history read: one loop, not ten.
    expect(runs.map((id) => demo.emulator.stats().polls[cozeIdOf(id)])).toEqual([3, 3, 4, 5]);
  });

  it("keeps polling for the others when one watcher leaves", async () => {
    const id = await startRun(4);
    const leaving = new AbortController();
    const early = watchToEnd(id, leaving.signal).catch(() => "left");
    const staying = watchToEnd(id);
    await expect
      .poll(() => demo.emulator.stats().polls[cozeIdOf(id)] ?? 0)
      .toBeGreaterThanOrEqual(1);
    leaving.abort();
    expect(await early).toBe("left");
    expect((await staying).at(-1)).toBe("result");
    expect(demo.emulator.stats().polls[cozeIdOf(id)]).toBe(4);
  });

  it("stops polling when the last watcher leaves", async () => {
    const id = await startRun(1_000);
    const ac = new AbortController();
    const watching = watchToEnd(id, ac.signal).catch(() => "left");
    await expect
      .poll(() => demo.emulator.stats().polls[cozeIdOf(id)] ?? 0)
      .toBeGreaterThanOrEqual(2);
    ac.abort();
    await watching;
    const after = demo.emulator.stats().polls[cozeIdOf(id)] ?? 0;
    await new Promise((r) => setTimeout(r, 100)); // five intervals: no further poll may happen
    expect(demo.emulator.stats().polls[cozeIdOf(id)]).toBeLessThanOrEqual(after + 1);
  });
});
