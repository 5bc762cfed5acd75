import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type Interceptor,
} from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cozeIdOf, handed } from "../../test/support/handles.js";
import { createPools, type Pools } from "../coze/pools.js";
import { createTokenCache } from "../coze/token-cache.js";
import { type Demo, demoModels, startDemo } from "../demo.js";
import { catalog } from "../emulator/index.js";
import { ChatMessageSchema, ChatService, ChatStatus, Role } from "../gen/cozegateway/v1/chat_pb.js";
import { ModelKind, ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { RunMode, RunStatus, WorkflowService } from "../gen/cozegateway/v1/workflow_pb.js";
import { type Caller, callerKey } from "./caller.js";
import { createChannels } from "./channels.js";
import { createServices } from "./services.js";
import { createTenant } from "./tenant.js";

const { bots, workflows } = catalog;

const user = (content: string) => create(ChatMessageSchema, { role: Role.USER, content });

let demo: Demo;
let pools: Pools;
let caller: Caller | undefined;
const secret = randomBytes(32);
/** A caller whose key hashes to `seed` repeated: distinct seeds are distinct keys. */
const callerNamed = (name: string, models: string[] | undefined, seed = 1): Caller => ({
  name,
  models,
  tenant: createTenant(secret, Buffer.alloc(32, seed)),
});
let chat: Client<typeof ChatService>;
let wf: Client<typeof WorkflowService>;
let models: Client<typeof ModelService>;

beforeAll(async () => {
  demo = await startDemo({ deltaMs: 0, pollIntervalMs: 10 });
  // Short stream idle timeout so the stalled-stream test ends quickly.
  demo.config.channels[0] = {
    ...(demo.config.channels[0] as (typeof demo.config.channels)[0]),
    timeouts: {
      connectMs: 2_000,
      headersMs: 2_000,
      streamIdleMs: 300,
      requestMs: 5_000,
      syncRunMs: 5_000,
    },
  };
  pools = createPools();
  const channels = createChannels({
    channels: demo.config.channels,
    tokens: createTokenCache({ pools }),
    pools,
  });
  const asCaller: Interceptor = (next) => (req) => {
    req.contextValues.set(callerKey, caller);
    return next(req);
  };
  const transport = createRouterTransport(createServices({ config: demo.config, channels }), {
    router: { interceptors: [asCaller] },
  });
  chat = createClient(ChatService, transport);
  wf = createClient(WorkflowService, transport);
  models = createClient(ModelService, transport);
});
afterEach(async () => {
  caller = undefined;
  demo.emulator.faults.clear();
  await expect.poll(() => demo.emulator.stats().openStreams).toBe(0);
  demo.emulator.reset();
});
afterAll(async () => {
  await pools.destroy();
  await demo.close();
});

async function rpcError(p: Promise<unknown> | AsyncIterable<unknown>): Promise<ConnectError> {
  let err: unknown;
  try {
    if (Symbol.asyncIterator in p) for await (const _ of p);
    else await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

describe("ChatService", () => {
  it("answers a bot turn routed by model name, with usage and typed messages", async () => {
    const res = await chat.chat({ model: demoModels.bot, messages: [user("hi there")] });
    expect(res.status).toBe(ChatStatus.COMPLETED);
    expect(res.answer).toBe("You said: hi there");
    expect(res.conversationId).toMatch(handed);
    expect(res.chatId).toMatch(handed);
    expect(res.usage?.tokenCount).toBeGreaterThan(0);
    expect(res.followUps.length).toBeGreaterThan(0);
    expect(res.messages.map((m) => m.type)).toContain("verbose");
    expect(demo.emulator.stats().calls.chat).toBe(1);
  });

  it("calls a bot by explicit id on the default channel", async () => {
    const res = await chat.chat({ botId: bots.echo, messages: [user("explicit")] });
    expect(res.answer).toBe("You said: explicit");
  });

  it("keeps system prompts and history: the system text leads the first user message", async () => {
    const res = await chat.chat({
      model: demoModels.bot,
      userId: "alice",
      messages: [
        create(ChatMessageSchema, { role: Role.SYSTEM, content: "Be brief." }),
        user("first"),
        create(ChatMessageSchema, { role: Role.ASSISTANT, content: "ok" }),
        user("!received"),
      ],
    });
    const got = JSON.parse(res.answer) as {
      user_id: string;
      messages: { role: string; content: string }[];
    };
    expect(got.user_id).toMatch(/^gw_/);
    expect(got.messages.map((m) => [m.role, m.content])).toEqual([
      ["user", "Be brief.\n\nfirst"],
      ["assistant", "ok"],
      ["user", "!received"],
    ]);
  });

  it("sends Coze a user id namespaced per key: stable, opaque, never the caller's own text", async () => {
    const userIdOf = async (userId = "") =>
      JSON.parse(
        (await chat.chat({ model: demoModels.bot, messages: [user("!received")], userId })).answer,
      ).user_id as string;
    caller = callerNamed("team-a", undefined, 1);
    const a = await userIdOf();
    expect(a).toMatch(/^gw_[A-Za-z0-9_-]{22}$/);
    expect(await userIdOf()).toBe(a);
    const alice = await userIdOf("alice");
    expect(alice).toMatch(/^gw_[A-Za-z0-9_-]{22}$/);
    expect(alice).not.toBe(a);
    // Another key naming the same end user reaches another Coze user.
    caller = callerNamed("team-b", undefined, 2);
    expect(await userIdOf("alice")).not.toBe(alice);
    expect(await userIdOf()).not.toBe(a);
  });

  it("sends images by URL and uploads inline data, referencing it by file id", async () => {
    const res = await chat.chat({
      model: demoModels.bot,
      messages: [
        create(ChatMessageSchema, {
          role: Role.USER,
          parts: [
            { kind: { case: "text", value: "look" } },
            {
              kind: {
                case: "image",
                value: { source: { case: "url", value: "https://example.com/a.png" } },
              },
            },
            {
              kind: {
                case: "image",
                value: {
                  source: {
                    case: "data",
                    value: { data: new Uint8Array([137, 80, 78, 71]), mimeType: "image/png" },
                  },
                },
              },
            },
          ],
        }),
      ],
    });
    expect(res.answer).toContain("look");
    expect(res.answer).toContain("https://example.com/a.png");
    expect(res.answer).toMatch(/file_id=\d+/);
    expect(demo.emulator.stats().calls["files.upload"]).toBe(1);
  });

  it("uploads nothing for a request it refuses, even when the bad part comes after the file", async () => {
    const png = (n: number) =>
      create(ChatMessageSchema, {
        role: Role.USER,
        parts: [
          {
            kind: {
              case: "image",
              value: {
                source: {
                  case: "data",
                  value: { data: new Uint8Array([137, 80, 78, n]), mimeType: "image/png" },
                },
              },
            },
          },
        ],
      });
    const badUrl = create(ChatMessageSchema, {
      role: Role.USER,
      parts: [
        { kind: { case: "image", value: { source: { case: "url", value: "ftp://x/a.png" } } } },
      ],
    });
    const err = await chat.chat({ model: demoModels.bot, messages: [png(1), badUrl] }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toContain("messages[1].parts[0].image.url");
    expect(demo.emulator.stats().calls["files.upload"] ?? 0).toBe(0);
    // Two files, each uploaded once, in the order of the messages.
    const res = await chat.chat({ model: demoModels.bot, messages: [png(2), png(3)] });
    expect(res.answer).toMatch(/file_id=\d+/);
    expect(demo.emulator.stats().calls["files.upload"]).toBe(2);
  });

  it("streams started, answer deltas in order, messages and completed", async () => {
    const cases: string[] = [];
    let text = "";
    for await (const ev of chat.chatStream({
      model: demoModels.bot,
      messages: [user("stream this please")],
    })) {
      cases.push(ev.event.case ?? "");
      if (ev.event.case === "delta") text += ev.event.value.text;
    }
    expect(cases[0]).toBe("started");
    expect(cases.at(-1)).toBe("completed");
    expect(cases.filter((c) => c === "delta").length).toBeGreaterThanOrEqual(3);
    expect(text).toBe("You said: stream this please");
  });

  it("carries reasoning separately", async () => {
    const res = await chat.chat({ model: demoModels.reasoning, messages: [user("why")] });
    expect(res.reasoning).not.toBe("");
    expect(res.answer).not.toBe("");
  });

  it("round-trips tool calls through tool_outputs", async () => {
    const first = await chat.chat({ model: demoModels.tool, messages: [user("Oslo")] });
    expect(first.status).toBe(ChatStatus.REQUIRES_ACTION);
    const call = first.toolCalls[0];
    expect(call?.name).toBe("get_weather");
    const second = await chat.chat({
      model: demoModels.tool,
      conversationId: first.conversationId,
      chatId: first.chatId,
      toolOutputs: [{ toolCallId: call?.id ?? "", output: "snow" }],
    });
    expect(second.status).toBe(ChatStatus.COMPLETED);
    expect(second.answer).toBe("The tool said: snow");
  });

  it("runs a chatflow routed by chatflow:{id}", async () => {
    const res = await chat.chat({ model: demoModels.chatflow, messages: [user("flow")] });
    expect(res.answer).toContain("flow");
  });

  it("refuses bad requests with InvalidArgument naming the field", async () => {
    const cases: [Parameters<typeof chat.chat>[0], string][] = [
      [{ messages: [user("x")] }, "model: is required (or bot_id)"],
      [{ botId: "abc", messages: [user("x")] }, "bot_id: must be a Coze id (digits)"],
      [{ model: demoModels.workflow, messages: [user("x")] }, "is a workflow"],
      [{ model: demoModels.bot, messages: [] }, "messages: needs at least one user message"],
      [
        {
          model: demoModels.bot,
          messages: [user("a"), create(ChatMessageSchema, { role: Role.ASSISTANT, content: "b" })],
        },
        "messages[1].role: the last message must be a user message",
      ],
      [
        { model: demoModels.bot, messages: [create(ChatMessageSchema, { content: "x" })] },
        "messages[0].role",
      ],
      [{ model: demoModels.bot, messages: [user("")] }, "messages[0].content: is empty"],
      [
        {
          model: demoModels.tool,
          conversationId: "1",
          toolOutputs: [{ toolCallId: "t", output: "o" }],
        },
        "chat_id: is required with tool_outputs",
      ],
      [
        {
          model: demoModels.bot,
          messages: [
            create(ChatMessageSchema, {
              role: Role.USER,
              parts: [
                {
                  kind: {
                    case: "image",
                    value: { source: { case: "url", value: "ftp://x/y.png" } },
                  },
                },
              ],
            }),
          ],
        },
        "messages[0].parts[0].image.url: must be an http(s) URL",
      ],
    ];
    for (const [req, message] of cases) {
      const err = await rpcError(chat.chat(req));
      expect(err.code, message).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain(message);
    }
    expect(demo.emulator.stats().calls.chat ?? 0).toBe(0);
  });

  it("answers NotFound for an unknown model and PermissionDenied outside the key's allow-list", async () => {
    expect((await rpcError(chat.chat({ model: "nope", messages: [user("x")] }))).code).toBe(
      Code.NotFound,
    );
    caller = callerNamed("limited", ["workflow:*"]);
    const err = await rpcError(chat.chat({ model: demoModels.bot, messages: [user("x")] }));
    expect(err.code).toBe(Code.PermissionDenied);
  });

  it("maps upstream failures to codes with Coze's code and log id in metadata", async () => {
    const failed = await rpcError(chat.chat({ botId: bots.failing, messages: [user("fail")] }));
    expect(failed.code).toBe(Code.Unknown);
    expect(failed.metadata.get("x-coze-code")).toBe("5000");
    expect(failed.rawMessage).toBe("chat.stream: Coze reported a failure (Coze code 5000)");

    demo.emulator.faults.inject({
      kind: "status",
      endpoint: "chat",
      status: 429,
      times: 1,
      retryAfterSeconds: 2,
    });
    const limited = await rpcError(chat.chat({ model: demoModels.bot, messages: [user("x")] }));
    expect(limited.code).toBe(Code.ResourceExhausted);
    expect(limited.metadata.get("retry-after")).toBe("2");
    expect(limited.metadata.get("x-coze-logid")).toBeTruthy();

    demo.emulator.faults.inject({ kind: "status", endpoint: "chat", status: 503, times: 1 });
    expect((await rpcError(chat.chat({ model: demoModels.bot, messages: [user("x")] }))).code).toBe(
      Code.Unavailable,
    );

    demo.emulator.faults.inject({ kind: "stall", endpoint: "chat", afterEvents: 2 });
    expect(
      (await rpcError(chat.chatStream({ model: demoModels.bot, messages: [user("x")] }))).code,
    ).toBe(Code.DeadlineExceeded);
  });

  it("cancels the Coze chat when the caller goes away mid-stream", async () => {
    const ac = new AbortController();
    const err = await rpcError(
      (async function* () {
        for await (const ev of chat.chatStream(
          { botId: bots.slow, messages: [user("slowly")] },
          { signal: ac.signal },
        )) {
          if (ev.event.case === "delta") ac.abort();
          yield ev;
        }
      })(),
    );
    expect(err.code).toBe(Code.Canceled);
    await expect.poll(() => demo.emulator.stats().calls["chat.cancel"]).toBe(1);
  });

  it("cancels the Coze chat when the call's deadline passes", async () => {
    const err = await rpcError(
      chat.chat({ botId: bots.slow, messages: [user("slowly")] }, { timeoutMs: 150 }),
    );
    expect(err.code).toBe(Code.DeadlineExceeded);
    await expect.poll(() => demo.emulator.stats().calls["chat.cancel"]).toBe(1);
  });

  it("cancels a chat by id", async () => {
    const ac = new AbortController();
    let ids = { conversationId: "", chatId: "" };
    for await (const ev of chat.chatStream(
      { botId: bots.slow, messages: [user("x")] },
      { signal: ac.signal },
    )) {
      if (ev.event.case === "started") {
        ids = ev.event.value;
        break;
      }
    }
    const res = await chat.cancelChat({ model: demoModels.bot, ...ids });
    expect(typeof res.canceled).toBe("boolean");
    expect(demo.emulator.stats().calls["chat.cancel"]).toBeGreaterThanOrEqual(1);
  });
});

describe("WorkflowService", () => {
  it("runs a workflow synchronously: output JSON unchanged plus a structured value", async () => {
    const res = await wf.runWorkflow({
      model: demoModels.workflow,
      parameters: { input: 'a "quoted" text' },
    });
    expect(res.status).toBe(RunStatus.SUCCEEDED);
    expect(res.outputJson).toBe(JSON.stringify({ output: 'a "quoted" text' }));
    expect(res.output?.kind.case).toBe("structValue");
    expect(res.debugUrl).toMatch(/^https:/);
  });

  it("starts and waits for workflow-async:{id}, polling until it ends", async () => {
    const res = await wf.runWorkflow({
      model: demoModels.workflowAsync,
      parameters: { input: "later", polls: 2 },
    });
    expect(res.status).toBe(RunStatus.SUCCEEDED);
    expect(JSON.parse(res.outputJson)).toEqual({
      output: "later",
      parameters: { input: "later", polls: 2 },
    });
    expect(demo.emulator.stats().polls[cozeIdOf(res.executeId)]).toBe(2);
  });

  it("returns the execute id at once in RUN_MODE_ASYNC, and GetWorkflowRun reads the run", async () => {
    const started = await wf.runWorkflow({
      workflowId: workflows.slowAsync,
      mode: RunMode.ASYNC,
      parameters: { input: "x", polls: 2 },
    });
    expect(started.status).toBe(RunStatus.RUNNING);
    expect(started.executeId).toMatch(handed);
    const first = await wf.getWorkflowRun({
      workflowId: workflows.slowAsync,
      executeId: started.executeId,
    });
    expect(first.status).toBe(RunStatus.RUNNING);
    const second = await wf.getWorkflowRun({
      workflowId: workflows.slowAsync,
      executeId: started.executeId,
    });
    expect(second.status).toBe(RunStatus.SUCCEEDED);
    expect(JSON.parse(second.outputJson).output).toBe("x");
    expect(second.createTime).toBeDefined();
  });

  it("streams node messages and then the result", async () => {
    const cases: string[] = [];
    let output = "";
    for await (const ev of wf.watchWorkflow({
      model: demoModels.workflow,
      parameters: { input: "w" },
    })) {
      cases.push(ev.event.case ?? "");
      if (ev.event.case === "result") output = ev.event.value.outputJson;
    }
    expect(cases.at(-1)).toBe("result");
    expect(cases).toContain("message");
    expect(JSON.parse(output)).toEqual({ output: "w" });
  });

  it("attaches to an async run by execute id and streams its progress until it ends", async () => {
    const started = await wf.runWorkflow({
      workflowId: workflows.slowAsync,
      mode: RunMode.ASYNC,
      parameters: { input: "z", polls: 3 },
    });
    const progress: number[] = [];
    let result = "";
    for await (const ev of wf.watchWorkflow({
      workflowId: workflows.slowAsync,
      executeId: started.executeId,
    })) {
      if (ev.event.case === "progress") progress.push(ev.event.value.polls);
      if (ev.event.case === "result") result = ev.event.value.outputJson;
    }
    expect(progress).toEqual([1, 2, 3]);
    expect(JSON.parse(result).output).toBe("z");
  });

  it("starts and watches workflow-async:{id} when no execute id is given, naming the run at once", async () => {
    const cases: string[] = [];
    const events: { case?: string; polls?: number; executeId?: string }[] = [];
    let header: string | null = null;
    for await (const ev of wf.watchWorkflow(
      { model: demoModels.workflowAsync, parameters: { input: "q", polls: 2 } },
      { onHeader: (h) => (header = h.get("x-coze-execute-id")) },
    )) {
      cases.push(ev.event.case ?? "");
      if (ev.event.case === "progress") {
        events.push({ polls: ev.event.value.polls, executeId: ev.event.value.executeId });
      }
    }
    // Issue 16: a progress event with the execute id before the first poll, and the header.
    expect(cases).toEqual(["progress", "progress", "progress", "result"]);
    expect(events[0]?.polls).toBe(0);
    expect(events[0]?.executeId).toMatch(handed);
    expect(events.every((e) => e.executeId === events[0]?.executeId)).toBe(true);
    expect(header).toBe(events[0]?.executeId);
  });

  it("interrupts with a question and resumes with the answer", async () => {
    let interrupt: { eventId: string; type: number; question: string } | undefined;
    for await (const ev of wf.watchWorkflow({ model: demoModels.interrupt })) {
      if (ev.event.case === "interrupt") interrupt = ev.event.value;
    }
    expect(interrupt?.question).toBe("Which city?");
    let output = "";
    for await (const ev of wf.resumeWorkflow({
      model: demoModels.interrupt,
      eventId: interrupt?.eventId ?? "",
      resumeData: "Lisbon",
      interruptType: interrupt?.type ?? 0,
    })) {
      if (ev.event.case === "result") output = ev.event.value.outputJson;
    }
    expect(JSON.parse(output)).toEqual({ output: "You answered: Lisbon" });
  });

  it("reports an interrupted sync run as INTERRUPTED with the question", async () => {
    const res = await wf.runWorkflow({ model: demoModels.interrupt });
    expect(res.status).toBe(RunStatus.INTERRUPTED);
    expect(res.interrupt?.eventId).toMatch(handed);
  });

  it("never reports a failed run as success", async () => {
    for (const mode of [RunMode.SYNC, RunMode.ASYNC_WAIT]) {
      const err = await rpcError(
        wf.runWorkflow({ workflowId: workflows.failing, mode, parameters: { input: "x" } }),
      );
      expect(err.code).toBe(Code.Unknown);
      expect(err.metadata.get("x-coze-code")).toBeTruthy();
    }
    const streamed = await rpcError(wf.watchWorkflow({ workflowId: workflows.failing }));
    expect(streamed.metadata.get("x-coze-code")).toBeTruthy();
  });

  it("refuses bad requests with InvalidArgument naming the field", async () => {
    const both = await rpcError(
      wf.runWorkflow({ model: demoModels.workflow, botId: "1", appId: "2" }),
    );
    expect(both.rawMessage).toBe("bot_id: cannot be combined with app_id");
    const badId = await rpcError(
      wf.getWorkflowRun({ model: demoModels.workflow, executeId: "x1" }),
    );
    expect(badId.code).toBe(Code.NotFound);
    expect(badId.rawMessage).toBe("execute_id: no workflow run with this id");
    const bot = await rpcError(wf.runWorkflow({ model: demoModels.bot }));
    expect(bot.code).toBe(Code.InvalidArgument);
    const noEvent = await rpcError(wf.resumeWorkflow({ model: demoModels.interrupt }));
    expect(noEvent.rawMessage).toBe("event_id: is required");
  });
});

describe("ModelService", () => {
  it("lists the configured routes, filtered by the key's allow-list", async () => {
    const all = await models.listModels({});
    expect(all.models.map((m) => m.name)).toEqual([
      demoModels.bot,
      demoModels.reasoning,
      demoModels.tool,
    ]);
    expect(all.models[0]?.kind).toBe(ModelKind.BOT);
    caller = callerNamed("limited", ["coze-r*"]);
    const limited = await models.listModels({});
    expect(limited.models.map((m) => m.name)).toEqual([demoModels.reasoning]);
  });
});
