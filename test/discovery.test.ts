import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import OpenAI, { PermissionDeniedError } from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { ChannelConfig, GatewayConfig } from "../src/config/index.js";
import { hashApiKey } from "../src/config/index.js";
import { demoConfig } from "../src/demo.js";
import { catalog, type Emulator, type GeneratedApp, startEmulator } from "../src/emulator/index.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { ModelService } from "../src/gen/cozegateway/v1/model_pb.js";
import { RunStatus, WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { createObservability, type Observability } from "../src/observability/index.js";
import { captureLog, type LogCapture } from "./support/log-capture.js";
import { createManualClock, type ManualClock } from "./support/manual-clock.js";

// Issue 17, discovery: the space's published bots, workflows and chatflows served as models,
// through the whole gateway against the emulator. Time is a manual clock shared by the gateway
// and the emulator, so each refresh happens when the test moves the clock, never on a timer.

const intervalMs = 300_000;
const keys = {
  all: `all-${randomBytes(12).toString("hex")}`,
  limited: `limited-${randomBytes(12).toString("hex")}`,
};

interface Setup {
  emulator: Emulator;
  app: GeneratedApp;
  clock: ManualClock;
  logs: LogCapture;
  observability: Observability;
}

/** An emulator on the manual clock, and a name-mode discovery config for it. */
async function setup(): Promise<Setup & { config: GatewayConfig }> {
  const clock = createManualClock(Date.now());
  const emulator = await startEmulator({ now: clock.now });
  const app = await emulator.createApp();
  const config = demoConfig({ port: 0, emulatorUrl: emulator.url, app, apiKey: keys.all });
  const channel = config.channels[0] as ChannelConfig;
  channel.discovery = { ...channel.discovery, naming: "name", intervalMs, startWaitMs: 5_000 };
  // A configured name that a discovered bot ("Slow talker") also wants: the route wins. It is
  // served by another channel (the same app, without discovery) and runs the echo bot.
  config.channels.push({
    ...channel,
    name: "other",
    isDefault: false,
    discovery: { ...channel.discovery, enabled: false },
  });
  config.models = [
    {
      name: "Slow-talker",
      channel: "other",
      kind: "bot",
      targetId: catalog.bots.echo,
      inputField: "input",
      weight: 1,
    },
  ];
  config.apiKeys.push({
    name: "limited",
    sha256: hashApiKey(keys.limited),
    models: ["Echo", "workflow:*"],
    rawCozeIds: false,
  });
  const logs = captureLog();
  const observability = createObservability({ level: "info", destination: logs.out });
  return { emulator, app, clock, logs, observability, config };
}

let s: Setup;
let gateway: Gateway;
let atStart: { bots: number; workflows: number };

const calls = () => {
  const c = s.emulator.stats().calls;
  return { bots: c["bots.list"] ?? 0, workflows: c["workflows.list"] ?? 0 };
};

beforeAll(async () => {
  const { config, ...rest } = await setup();
  s = rest;
  // Not yet published when the gateway starts: a later refresh picks it up.
  s.emulator.space.remove(catalog.bots.reasoning);
  gateway = await startGateway({ config, clock: s.clock, observability: s.observability });
  atStart = calls();
});
afterAll(async () => {
  await gateway?.close();
  await s?.emulator.close();
});

const openai = (key = keys.all) =>
  new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: key, maxRetries: 0 });
const auth =
  (key: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
const connect = (key = keys.all) =>
  createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1", interceptors: [auth(key)] });
const modelIds = async (key = keys.all) => (await openai(key).models.list()).data.map((m) => m.id);
const ask = async (model: string, text: string, key = keys.all) =>
  (
    await openai(key).chat.completions.create({
      model,
      messages: [{ role: "user", content: text }],
    })
  ).choices[0]?.message.content;
const metrics = async () => (await fetch(`${gateway.url}/metrics`)).text();

/** Refreshes counted in metrics so far, every channel, kind and outcome. */
async function refreshes(): Promise<number> {
  const counts = (await metrics()).matchAll(
    /^coze_gateway_discovery_refreshes_total\{[^}]*\} (\d+)$/gm,
  );
  return [...counts].reduce((n, m) => n + Number(m[1]), 0);
}

/** Moves the clock by `ms` and waits for the one refresh (three kinds) that this starts. */
async function refreshAfter(ms: number) {
  const before = await refreshes();
  await s.clock.advance(ms);
  await expect.poll(refreshes, { timeout: 10_000 }).toBe(before + 3);
}

/** The log lines written so far. */
function logLines() {
  s.observability.flush();
  return s.logs.lines();
}

describe("discovery at start", () => {
  it("lists the space before the first request: one bots list, a workflows and a chatflows list", async () => {
    expect(atStart).toEqual({ bots: 1, workflows: 2 });
    expect(await modelIds()).toEqual([
      "Slow-talker",
      "Echo",
      "Failing-bot",
      "Weather-tool",
      "bot:7390000000000000005",
      "ask_question",
      "echo",
      "failing_workflow",
      "large_output",
      "slow_echo",
      "echo_chatflow",
    ]);
  });

  it("shows Coze's names and descriptions in /v1/models and ListModels, never the app's workflow", async () => {
    const page = await openai().models.list();
    expect(page.data.find((m) => m.id === "Weather-tool")).toEqual({
      id: "Weather-tool",
      object: "model",
      created: 0,
      owned_by: "coze-gateway",
      kind: "bot",
      discovered: true,
      name: "Weather tool",
      description: "Asks you to run get_weather, then answers with what the tool said.",
    });
    // The configured route is not discovered, and has nothing to borrow (its bot is listed).
    expect(page.data[0]).toEqual({
      id: "Slow-talker",
      object: "model",
      created: 0,
      owned_by: "coze-gateway",
      kind: "bot",
    });
    const res = await createClient(ModelService, connect()).listModels({});
    const chatflow = res.models.find((m) => m.name === "echo_chatflow");
    expect(chatflow).toMatchObject({
      channel: "demo",
      displayName: "echo_chatflow",
      description: "A chatflow that repeats what you say.",
      discovered: true,
    });
    expect(res.models.map((m) => m.name)).not.toContain("app_helper");
    const one = await openai().models.retrieve("echo");
    expect(one).toMatchObject({ kind: "workflow", discovered: true, name: "echo" });
  });

  it("lets the configured route win over the discovered name, whose bot keeps its id name", async () => {
    // The configured Slow-talker runs the echo bot; the discovered "Slow talker" is bot:{id}.
    expect(await ask("Slow-talker", "who wins")).toBe("You said: who wins");
    const warning = await vi.waitFor(() => {
      const line = logLines().find(
        (l) => l.msg === "discovered names taken by a configured route or another item",
      );
      if (line === undefined) throw new Error("no warning yet");
      return line;
    });
    expect(warning?.renamed).toEqual([`Slow-talker → bot:${catalog.bots.slow}`]);
  });
});

describe("a discovered model in use", () => {
  it("answers over REST (Chat Completions) and Connect, bot and workflow alike", async () => {
    expect(await ask("Echo", "hello")).toBe("You said: hello");
    const chat = createClient(ChatService, connect());
    const res = await chat.chat({
      model: "Echo",
      messages: [{ role: Role.USER, content: "over connect" }],
    });
    expect(res.answer).toBe("You said: over connect");
    expect(await ask("echo", "a workflow")).toContain("a workflow");
    const run = await createClient(WorkflowService, connect()).runWorkflow({
      model: "echo",
      parameters: { input: "x" },
    });
    expect(run.status).toBe(RunStatus.SUCCEEDED);
    expect(run.outputJson).toBe('{"output":"x"}');
    expect(await ask("echo_chatflow", "flow")).toBe("You said: flow");
  });

  it("applies the key's allow-list to discovered names exactly as to configured ones", async () => {
    expect(await modelIds(keys.limited)).toEqual(["Echo"]);
    expect(await ask("Echo", "allowed", keys.limited)).toBe("You said: allowed");
    const rest = await ask("Weather-tool", "x", keys.limited).catch((e: unknown) => e);
    expect(rest).toBeInstanceOf(PermissionDeniedError);
    const grpc = await createClient(ChatService, connect(keys.limited))
      .chat({ model: "echo_chatflow", messages: [{ role: Role.USER, content: "x" }] })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(grpc?.code).toBe(Code.PermissionDenied);
    const hidden = await openai(keys.limited)
      .models.retrieve("Weather-tool")
      .catch((e: unknown) => e);
    expect(hidden).toMatchObject({ status: 404 });
  });

  it("never lists on a request's path", async () => {
    const before = calls();
    await modelIds();
    await createClient(ModelService, connect()).listModels({});
    await ask("Echo", "again");
    await ask("no-such-model", "x").catch(() => undefined);
    await openai().models.retrieve("echo");
    expect(calls()).toEqual(before);
  });
});

describe("refreshes in the background", () => {
  it("picks up a newly published bot and drops an unpublished one after interval_ms, and not before", async () => {
    s.emulator.space.put({
      kind: "bot",
      id: catalog.bots.reasoning,
      name: "Reasoning echo",
      description: "Thinks out loud first, then repeats what you say.",
    });
    s.emulator.space.remove(catalog.bots.failing);
    const before = calls();
    await s.clock.advance(intervalMs - 1);
    expect(calls()).toEqual(before);
    expect(await modelIds()).not.toContain("Reasoning-echo");
    await refreshAfter(1);
    expect(calls()).toEqual({ bots: before.bots + 1, workflows: before.workflows + 2 });
    const ids = await modelIds();
    expect(ids).toContain("Reasoning-echo");
    expect(ids).not.toContain("Failing-bot");
    const answer = await openai().chat.completions.create({
      model: "Reasoning-echo",
      messages: [{ role: "user", content: "think" }],
    });
    expect(answer.choices[0]?.message.content).toBe("You said: think");
    const gone = await ask("Failing-bot", "x").catch((e: unknown) => e);
    expect(gone).toMatchObject({ status: 404 });
    expect(await metrics()).toMatch(
      /coze_gateway_discovered_models\{channel="demo",kind="bot"\} 4\n/,
    );
  });

  it("keeps the last list when a refresh fails, says so without secrets, and retries within seconds", async () => {
    const models = await modelIds();
    // A refusal that is not worth retrying at once: the refresh of bots fails.
    s.emulator.faults.inject({ kind: "status", endpoint: "bots.list", status: 400, times: 1 });
    const before = calls();
    await refreshAfter(intervalMs);
    expect(calls()).toEqual({ bots: before.bots + 1, workflows: before.workflows + 2 });
    await expect
      .poll(() =>
        logLines().find((l) => l.msg === "discovery refresh failed; keeping the last list"),
      )
      .toMatchObject({ level: "warn", channel: "demo", kind: "bot", cozeCode: 4000, kept: 4 });
    expect(await modelIds()).toEqual(models);
    expect(await ask("Echo", "still here")).toBe("You said: still here");
    const text = await metrics();
    expect(text).toMatch(
      /coze_gateway_discovery_refreshes_total\{channel="demo",kind="bot",outcome="failed"\} 1\n/,
    );
    expect(text).toMatch(/coze_gateway_discovered_models\{channel="demo",kind="bot"\} 4\n/);
    // The retry comes after about 5 s (with jitter, at most 5 s), not a whole interval.
    await refreshAfter(5_000);
    expect(calls()).toEqual({ bots: before.bots + 2, workflows: before.workflows + 4 });
    expect(await metrics()).toMatch(
      /coze_gateway_discovery_refreshes_total\{channel="demo",kind="bot",outcome="ok"\} 3\n/,
    );
    const log = s.logs.text();
    expect(log).not.toMatch(/czs_/);
    expect(log).not.toContain(s.app.privateKeyPem.split("\n")[1] ?? "-");
  });
});

describe("the start", () => {
  it("waits for the first list at most start_wait_ms, then starts without it; close cancels the list", async () => {
    const { config, ...t } = await setup();
    t.emulator.faults.inject({ kind: "latency", endpoint: "bots.list", ms: 60_000 });
    let started: Gateway | undefined;
    const starting = startGateway({ config, clock: t.clock, observability: t.observability }).then(
      (g) => {
        started = g;
        return g;
      },
    );
    try {
      await vi.waitFor(() => expect(t.emulator.stats().calls["bots.list"]).toBe(1));
      await t.clock.advance(4_999);
      expect(started).toBeUndefined();
      await t.clock.advance(1);
      const g = await starting;
      const ids = (
        await new OpenAI({ baseURL: `${g.url}/v1`, apiKey: keys.all, maxRetries: 0 }).models.list()
      ).data.map((m) => m.id);
      expect(ids).toEqual(["Slow-talker"]);
      t.observability.flush();
      await vi.waitFor(() =>
        expect(t.logs.lines()).toContainEqual(
          expect.objectContaining({
            level: "warn",
            msg: "discovery's first list is not in yet; starting without it",
            channel: "demo",
            startWaitMs: 5000,
          }),
        ),
      );
      // The list still waits at the emulator: closing does not wait for it.
      await g.close();
      expect(t.emulator.stats().calls["workflows.list"]).toBeUndefined();
    } finally {
      await (await starting.catch(() => undefined))?.close();
      await t.emulator.close();
    }
  });

  it("starts at once when Coze refuses the list (an unknown space), and says why", async () => {
    const { config, ...t } = await setup();
    (config.channels[0] as ChannelConfig).spaceId = "7350000000000000999";
    const g = await startGateway({ config, clock: t.clock, observability: t.observability });
    try {
      expect(t.emulator.stats().calls).toMatchObject({ "bots.list": 1, "workflows.list": 2 });
      const page = await new OpenAI({ baseURL: `${g.url}/v1`, apiKey: keys.all }).models.list();
      expect(page.data.map((m) => m.id)).toEqual(["Slow-talker"]);
      t.observability.flush();
      await vi.waitFor(() => {
        const failed = t.logs
          .lines()
          .filter((l) => l.msg === "discovery refresh failed; keeping the last list");
        expect(failed.map((l) => [l.kind, l.code, l.cozeCode, l.kept])).toEqual([
          ["bot", "not_found", 4200, 0],
          ["workflow", "not_found", 4200, 0],
          ["chatflow", "not_found", 4200, 0],
        ]);
      });
    } finally {
      await g.close();
      await t.emulator.close();
    }
  });
});
