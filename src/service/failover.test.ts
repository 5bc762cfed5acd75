import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cozeIdOf } from "../../test/support/handles.js";
import type { GatewayConfig, ModelRoute } from "../config/index.js";
import { createPools, type Pools } from "../coze/pools.js";
import { createTokenCache } from "../coze/token-cache.js";
import { demoConfig } from "../demo.js";
import { catalog, type Emulator, startEmulator } from "../emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "../gen/cozegateway/v1/chat_pb.js";
import { ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { RunMode, WorkflowService } from "../gen/cozegateway/v1/workflow_pb.js";
import { createChannels } from "./channels.js";
import { createServices } from "./services.js";

// Two channels on two independent emulators (two Coze accounts): faults on one leave the other.
let a: Emulator;
let b: Emulator;
let pools: Pools;
let config: GatewayConfig;
let random = 0;

const user = (content: string) => create(ChatMessageSchema, { role: Role.USER, content });
const route = (
  name: string,
  channel: string,
  kind: ModelRoute["kind"],
  targetId: string,
  weight = 1,
): ModelRoute => ({
  name,
  channel,
  kind,
  targetId,
  inputField: "input",
  weight,
});

function clients() {
  const channels = createChannels({
    channels: config.channels,
    tokens: createTokenCache({ pools }),
    pools,
  });
  const transport = createRouterTransport(
    createServices({ config, channels, random: () => random }),
  );
  return {
    chat: createClient(ChatService, transport),
    wf: createClient(WorkflowService, transport),
    models: createClient(ModelService, transport),
  };
}

/** The x-gateway-channel of a unary call, and its result. */
async function withChannel<T>(call: (opts: { onHeader: (h: Headers) => void }) => Promise<T>) {
  let channel = "";
  const value = await call({ onHeader: (h) => (channel = h.get("x-gateway-channel") ?? "") });
  return { value, channel };
}

beforeAll(async () => {
  a = await startEmulator();
  b = await startEmulator();
  const appA = await a.createApp();
  const appB = await b.createApp();
  const base = demoConfig({ emulatorUrl: a.url, app: appA, apiKey: "failover-key-0123456789" });
  const second = demoConfig({ emulatorUrl: b.url, app: appB, apiKey: "unused-key-0123456789ab" });
  const channelA = { ...(base.channels[0] as GatewayConfig["channels"][number]), name: "a" };
  const channelB = {
    ...(second.channels[0] as GatewayConfig["channels"][number]),
    name: "b",
    isDefault: false,
  };
  config = {
    ...base,
    channels: [channelA, channelB],
    models: [
      route("support", "a", "bot", catalog.bots.echo, 1),
      route("support", "b", "bot", catalog.bots.echo, 3),
      route("report", "a", "workflow_async", catalog.workflows.slowAsync),
      route("report", "b", "workflow_async", catalog.workflows.slowAsync),
      route("flaky", "a", "workflow", catalog.workflows.failing),
      route("flaky", "b", "workflow", catalog.workflows.failing),
      route("only-a", "a", "bot", catalog.bots.echo),
    ],
  };
  for (const ch of config.channels) ch.polling = { ...ch.polling, intervalMs: 5 };
  pools = createPools();
});
afterEach(() => {
  a.reset();
  b.reset();
  random = 0;
});
afterAll(async () => {
  await pools.destroy();
  await a.close();
  await b.close();
});

describe("failover routes", () => {
  it("chooses by weight: 1:3 sends a draw below 1/4 to a, above to b", async () => {
    const { chat } = clients();
    random = 0.2;
    expect(
      (await withChannel((o) => chat.chat({ model: "support", messages: [user("x")] }, o))).channel,
    ).toBe("a");
    random = 0.3;
    expect(
      (await withChannel((o) => chat.chat({ model: "support", messages: [user("x")] }, o))).channel,
    ).toBe("b");
  });

  it("moves a new turn to the next channel when the first is rate limited", async () => {
    const { chat } = clients();
    a.faults.inject({
      kind: "status",
      endpoint: "chat",
      status: 429,
      times: 1,
      retryAfterSeconds: 1,
    });
    const { value, channel } = await withChannel((o) =>
      chat.chat({ model: "support", messages: [user("hi")] }, o),
    );
    expect(value.answer).toBe("You said: hi");
    expect(channel).toBe("b");
    expect([a.stats().calls.chat, b.stats().calls.chat]).toEqual([1, 1]);
  });

  it("moves on when the first channel cannot get a token", async () => {
    const { chat } = clients();
    a.faults.inject({ kind: "token_down" });
    const { channel } = await withChannel((o) =>
      chat.chat({ model: "support", messages: [user("hi")] }, o),
    );
    expect(channel).toBe("b");
    expect(a.stats().calls.chat ?? 0).toBe(0);
  });

  it("never sends a turn again after a 500: the first channel may have started it", async () => {
    const { chat } = clients();
    a.faults.inject({ kind: "status", endpoint: "chat", status: 500, times: 1 });
    const err = await chat
      .chat({ model: "support", messages: [user("hi")] })
      .catch(ConnectError.from);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect(b.stats().calls.chat ?? 0).toBe(0);
  });

  it("keeps a conversation on its channel: no failover for follow-ups", async () => {
    const { chat } = clients();
    const first = await withChannel((o) =>
      chat.chat({ model: "support", channel: "b", messages: [user("one")] }, o),
    );
    expect(first.channel).toBe("b");
    b.faults.inject({ kind: "status", endpoint: "chat", status: 429, times: 1 });
    const err = await chat
      .chat({
        model: "support",
        channel: "b",
        conversationId: first.value.conversationId,
        messages: [user("two")],
      })
      .catch(ConnectError.from);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect(a.stats().calls.chat ?? 0).toBe(0);
  });

  it("starts an async run on the next channel and polls it where it started", async () => {
    const { wf } = clients();
    a.faults.inject({ kind: "status", endpoint: "workflow.run", status: 503, times: 1 });
    const { value, channel } = await withChannel((o) =>
      wf.runWorkflow(
        { model: "report", mode: RunMode.ASYNC_WAIT, parameters: { input: "r", polls: 2 } },
        o,
      ),
    );
    expect(channel).toBe("b");
    expect(JSON.parse(value.outputJson).output).toBe("r");
    expect(b.stats().polls[cozeIdOf(value.executeId)]).toBe(2);
    expect(a.stats().calls["workflow.history"] ?? 0).toBe(0);
  });

  it("moves on once per channel for a balance or quota error (another account), then gives up", async () => {
    const { wf } = clients();
    a.faults.inject({ kind: "coze_error", endpoint: "workflow.run", code: 4011, times: 5 });
    const moved = await withChannel((o) =>
      wf.runWorkflow({ model: "report", mode: RunMode.ASYNC, parameters: { input: "r" } }, o),
    );
    expect(moved.channel).toBe("b");
    expect([a.stats().calls["workflow.run"], b.stats().calls["workflow.run"]]).toEqual([1, 1]);
    a.reset();
    b.reset();
    for (const em of [a, b]) {
      em.faults.inject({ kind: "coze_error", endpoint: "workflow.run", code: 4028, times: 5 });
    }
    const err = await wf
      .runWorkflow({ model: "report", mode: RunMode.ASYNC, parameters: { input: "r" } })
      .catch(ConnectError.from);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).metadata.get("x-gateway-error")).toBe("quota_exceeded");
    // One call per channel: no retry on either, no second round.
    expect([a.stats().calls["workflow.run"], b.stats().calls["workflow.run"]]).toEqual([1, 1]);
  });

  it("holds the run on the channel whose plan refuses is_async, without trying the next", async () => {
    const { wf } = clients();
    a.faults.inject({ kind: "free_plan" });
    const { value, channel } = await withChannel((o) =>
      wf.runWorkflow(
        { model: "report", mode: RunMode.ASYNC, parameters: { input: "r", run_ms: 0 } },
        o,
      ),
    );
    expect(channel).toBe("a");
    expect(cozeIdOf(value.executeId)).toMatch(/^0\d{18}$/);
    expect(b.stats().calls["workflow.run"] ?? 0).toBe(0);
    await expect.poll(() => a.stats().openStreams).toBe(0);
  });

  it("never moves a run Coze started and failed (its error names it) to another channel", async () => {
    const { wf } = clients();
    const err = await wf
      .runWorkflow({ model: "flaky", parameters: { error_code: 4013 } })
      .catch(ConnectError.from);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).metadata.get("x-coze-execute-id")).toBeTruthy();
    expect([a.stats().calls["workflow.run"], b.stats().calls["workflow.run"] ?? 0]).toEqual([1, 0]);
  });

  it("narrows a model to the channel the request names, and refuses one that does not serve it", async () => {
    const { chat } = clients();
    random = 0.99;
    const { channel } = await withChannel((o) =>
      chat.chat({ model: "support", channel: "a", messages: [user("x")] }, o),
    );
    expect(channel).toBe("a");
    const err = await chat
      .chat({ model: "only-a", channel: "b", messages: [user("x")] })
      .catch(ConnectError.from);
    expect((err as ConnectError).rawMessage).toBe('channel "b" does not serve model "only-a"');
  });

  it("lists a failover model once", async () => {
    const { models } = clients();
    const names = (await models.listModels({})).models.map((m) => m.name);
    expect(names.filter((n) => n === "support")).toHaveLength(1);
  });
});
