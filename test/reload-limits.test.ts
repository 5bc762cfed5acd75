import { randomBytes } from "node:crypto";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { ChannelConfig, GatewayConfig } from "../src/config/index.js";
import { hashApiKey } from "../src/config/index.js";
import { demoConfig } from "../src/demo.js";
import { catalog, type Emulator, startEmulator } from "../src/emulator/index.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { createManualClock, type ManualClock } from "./support/manual-clock.js";
import {
  type ReloadChannel,
  type ReloadFile,
  startReloadGateway,
} from "./support/reload-fixture.js";

// Issue 15 after the limits and discovery merged: a reload hands the shared limiter the new
// keys' limits (what the keys used carries over), and discovery belongs to the config in force:
// a kept channel keeps what it discovered, a changed one lists its space before the reload
// applies, and the replaced config's loop stops.

describe("per-key limits on reload", () => {
  let emulator: Emulator;
  let channel: ReloadChannel;
  const open: { close(): Promise<void> }[] = [];
  beforeAll(async () => {
    emulator = await startEmulator({ timing: { deltaMs: 0 } });
    const app = await emulator.createApp();
    channel = {
      name: "main",
      baseUrl: emulator.url,
      app,
      bot: catalog.bots.echo,
      models: ["echo"],
    };
  });
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });
  afterAll(async () => {
    await emulator?.close();
  });

  const alice = { name: "alice", key: `alice-${randomBytes(12).toString("hex")}` };
  const file = (requestsPerMinute: number): ReloadFile => ({
    keys: [{ ...alice, limits: { requests_per_minute: requestsPerMinute } }],
    channels: [channel],
  });

  /** One chat completion as alice: its status and the request limit the answer states. */
  async function call(url: string) {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${alice.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "echo", messages: [{ role: "user", content: "hi" }] }),
    });
    await res.arrayBuffer();
    return { status: res.status, limit: res.headers.get("x-ratelimit-limit-requests") };
  }

  it("applies a changed requests_per_minute from the next call, counting the calls made before", async () => {
    const gw = await startReloadGateway(file(2));
    open.push(gw);
    expect(await call(gw.url)).toEqual({ status: 200, limit: "2" });
    expect(await call(gw.url)).toEqual({ status: 200, limit: "2" });
    expect((await call(gw.url)).status).toBe(429);

    // Raised to 4: the two calls of this minute still count, so two more get through.
    expect((await gw.reload(file(4))).outcome).toBe("applied");
    expect(await call(gw.url)).toEqual({ status: 200, limit: "4" });
    expect(await call(gw.url)).toEqual({ status: 200, limit: "4" });
    const refused = await call(gw.url);
    expect(refused.status).toBe(429);

    // The SDK sees the refusal of the lowered limit as OpenAI's own.
    expect((await gw.reload(file(1))).outcome).toBe("applied");
    const sdk = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: alice.key, maxRetries: 0 });
    const err = await sdk.chat.completions
      .create({ model: "echo", messages: [{ role: "user", content: "hi" }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).message).toContain(
      "1 requests per minute",
    );
  });

  it("lifts the limits of a key whose limits a reload removed", async () => {
    const gw = await startReloadGateway(file(1));
    open.push(gw);
    expect((await call(gw.url)).status).toBe(200);
    expect((await call(gw.url)).status).toBe(429);
    const unlimited: ReloadFile = { keys: [alice], channels: [channel] };
    expect((await gw.reload(unlimited)).outcome).toBe("applied");
    expect(await call(gw.url)).toEqual({ status: 200, limit: null });
  });
});

describe("discovery on reload", () => {
  const key = `all-${randomBytes(12).toString("hex")}`;
  let emulator: Emulator;
  let clock: ManualClock;
  let config: GatewayConfig;
  let gateway: Gateway;

  const lists = () => {
    const c = emulator.stats().calls;
    return { bots: c["bots.list"] ?? 0, workflows: c["workflows.list"] ?? 0 };
  };
  const modelIds = async () =>
    (
      await new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: key, maxRetries: 0 }).models.list()
    ).data.map((m) => m.id);
  const ask = async (model: string, text: string) =>
    (
      await new OpenAI({
        baseURL: `${gateway.url}/v1`,
        apiKey: key,
        maxRetries: 0,
      }).chat.completions.create({ model, messages: [{ role: "user", content: text }] })
    ).choices[0]?.message.content;
  /** `config` with its discovering channel changed by `change`, and one more key. */
  const next = (change: Partial<ChannelConfig["discovery"]> = {}): GatewayConfig => {
    const [demo, ...rest] = config.channels as [ChannelConfig, ...ChannelConfig[]];
    return {
      ...config,
      apiKeys: [
        ...config.apiKeys,
        {
          name: `k${randomBytes(4).toString("hex")}`,
          sha256: hashApiKey(randomBytes(16).toString("hex")),
          models: undefined,
          rawCozeIds: false,
        },
      ],
      channels: [{ ...demo, discovery: { ...demo.discovery, ...change } }, ...rest],
    };
  };

  beforeAll(async () => {
    clock = createManualClock(Date.now());
    emulator = await startEmulator({ now: clock.now });
    const app = await emulator.createApp();
    config = demoConfig({ port: 0, emulatorUrl: emulator.url, app, apiKey: key });
    const demo = config.channels[0] as ChannelConfig;
    demo.discovery = { ...demo.discovery, naming: "name", intervalMs: 300_000, startWaitMs: 5_000 };
    // No configured routes: a discovered item a route runs would lend it its name instead.
    config.models = [];
    gateway = await startGateway({ config, clock });
  });
  afterAll(async () => {
    await gateway?.close();
    await emulator?.close();
  });

  it("keeps a kept channel's discovered models, lists its space once, and stops the old loop", async () => {
    const before = await modelIds();
    expect(before).toContain("Echo");
    const listed = lists();
    const sleeping = clock.pendingSleeps();
    expect((await gateway.reload(async () => next())).outcome).toBe("applied");
    // The new config's discovery listed the space before it applied.
    expect(lists()).toEqual({ bots: listed.bots + 1, workflows: listed.workflows + 2 });
    expect(await modelIds()).toEqual(before);
    expect(await ask("Echo", "after the reload")).toBe("You said: after the reload");
    // One loop sleeps till the next refresh, as before: the replaced config's loop ended.
    await vi.waitFor(() => expect(clock.pendingSleeps()).toBe(sleeping));
    await clock.advance(300_000);
    await vi.waitFor(() =>
      expect(lists()).toEqual({ bots: listed.bots + 2, workflows: listed.workflows + 4 }),
    );
    config = next();
  });

  it("serves a kept channel's discovered models when the new config's lists fail", async () => {
    const before = await modelIds();
    // Every list of the new config fails: bots once, workflows and chatflows once each.
    emulator.faults.inject({ kind: "status", endpoint: "bots.list", status: 400, times: 1 });
    emulator.faults.inject({ kind: "status", endpoint: "workflows.list", status: 400, times: 2 });
    expect((await gateway.reload(async () => next())).outcome).toBe("applied");
    expect(await modelIds()).toEqual(before);
    expect(await ask("Echo", "kept")).toBe("You said: kept");
    config = next();

    // A list that does not come in start_wait_ms: the kept names are served meanwhile.
    emulator.faults.inject({ kind: "latency", endpoint: "bots.list", ms: 60_000 });
    const bots = lists().bots;
    const slow = gateway.reload(async () => next());
    await vi.waitFor(() => expect(lists().bots).toBe(bots + 1));
    await clock.advance(5_000);
    expect((await slow).outcome).toBe("applied");
    expect(await modelIds()).toEqual(before);
    emulator.faults.clear();
    config = next();
  });

  it("lists a changed channel's space before the reload applies, waiting at most start_wait_ms", async () => {
    // Naming by id: the new config serves bot:{id} names from its first moment.
    let applied = false;
    const reloading = gateway
      .reload(async () => next({ naming: "id" }))
      .then((r) => {
        applied = true;
        return r;
      });
    expect((await reloading).outcome).toBe("applied");
    const ids = await modelIds();
    expect(ids).toContain(`bot:${catalog.bots.echo}`);
    expect(ids).not.toContain("Echo");
    config = next({ naming: "id" });

    // A list that does not come: the reload waits start_wait_ms, calls go on meanwhile.
    emulator.faults.inject({ kind: "latency", endpoint: "bots.list", ms: 60_000 });
    applied = false;
    const slow = gateway
      .reload(async () => next({ naming: "name" }))
      .then((r) => {
        applied = true;
        return r;
      });
    const bots = lists().bots;
    await vi.waitFor(() => expect(lists().bots).toBe(bots + 1));
    await clock.advance(4_999);
    expect(applied).toBe(false);
    expect(await ask(`bot:${catalog.bots.echo}`, "meanwhile")).toBe("You said: meanwhile");
    await clock.advance(1);
    expect((await slow).outcome).toBe("applied");
    // A changed channel starts without the old config's names: none is served until its list.
    const late = await modelIds();
    expect(late).not.toContain("Echo");
    expect(late).not.toContain(`bot:${catalog.bots.echo}`);
    config = next({ naming: "name" });
  });
});
