import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import fc from "fast-check";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../src/config/index.js";
import { demoModels } from "../src/demo.js";
import type { EndpointName } from "../src/emulator/index.js";
import { startGateway } from "../src/gateway.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { RunMode, RunStatus, WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";
import { cozeIdOf, handed } from "./support/handles.js";

// Issue 13: every key is a tenant. Key "other" may use every model, like the demo key: what
// stops it is only that the ids it names were handed to another key.
const otherKey = "other-key-0123456789abcdef";
const rawKey = "raw-ids-key-0123456789abcdef";
const limitedKey = "limited-key-0123456789abcdef";

let fx: GatewayFixture;
beforeAll(async () => {
  fx = await startGatewayFixture({
    apiKeys: [
      { name: "other", sha256: hashApiKey(otherKey), models: undefined, rawCozeIds: false },
      { name: "raw", sha256: hashApiKey(rawKey), models: undefined, rawCozeIds: true },
      { name: "limited", sha256: hashApiKey(limitedKey), models: ["coze-echo"], rawCozeIds: false },
    ],
  });
});
afterAll(async () => {
  await fx?.close();
});
beforeEach(() => fx.demo.emulator.reset());

const user = (content: string) => create(ChatMessageSchema, { role: Role.USER, content });
const calls = (endpoint: EndpointName) => fx.demo.emulator.stats().calls[endpoint] ?? 0;

function auth(key: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
}

const transports: [string, (key: string) => Transport][] = [
  ["gRPC", (key) => createGrpcTransport({ baseUrl: fx.url, interceptors: [auth(key)] })],
  [
    "Connect",
    (key) =>
      createConnectTransport({ baseUrl: fx.url, httpVersion: "1.1", interceptors: [auth(key)] }),
  ],
];

async function rpcError(p: Promise<unknown> | AsyncIterable<unknown>): Promise<ConnectError> {
  try {
    if (Symbol.asyncIterator in p) for await (const _ of p);
    else await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  return expect.fail("the call succeeded");
}

/** The failure every foreign, forged or stale id gets: NotFound, naming the field only. */
function expectNotFound(err: ConnectError, field: string) {
  expect(err.code).toBe(Code.NotFound);
  expect(err.rawMessage).toMatch(new RegExp(`^${field}: no [a-z ]+ with this id$`));
}

/** What key A (the demo key) leaves behind for others to try. */
async function ownedByA(transport: Transport) {
  const chat = createClient(ChatService, transport);
  const wf = createClient(WorkflowService, transport);
  const turn = await chat.chat({ model: demoModels.tool, messages: [user("Paris")] });
  const run = await wf.runWorkflow({
    model: demoModels.workflowAsync,
    mode: RunMode.ASYNC,
    parameters: { input: "x", polls: 50 },
  });
  const asked = await wf.runWorkflow({ model: demoModels.interrupt, parameters: {} });
  return {
    conversationId: turn.conversationId,
    chatId: turn.chatId,
    toolCallId: turn.toolCalls[0]?.id ?? "",
    executeId: run.executeId,
    eventId: asked.interrupt?.eventId ?? "",
  };
}

describe.each(transports)("another key's ids over %s", (_name, make) => {
  it("hands out ids bound to the key, and the key that got them can use them", async () => {
    const a = await ownedByA(make(fx.key));
    for (const id of [a.conversationId, a.chatId, a.executeId, a.eventId]) {
      expect(id).toMatch(handed);
    }
    const wf = createClient(WorkflowService, make(fx.key));
    const run = await wf.getWorkflowRun({
      model: demoModels.workflowAsync,
      executeId: a.executeId,
    });
    expect(run.status).toBe(RunStatus.RUNNING);
    expect(run.executeId).toBe(a.executeId);
    const chat = createClient(ChatService, make(fx.key));
    const done = await chat.chat({
      model: demoModels.tool,
      conversationId: a.conversationId,
      chatId: a.chatId,
      toolOutputs: [{ toolCallId: a.toolCallId, output: "sunny" }],
    });
    expect(done.answer).toBe("The tool said: sunny");
  });

  it("refuses them with NotFound before Coze is called", async () => {
    const a = await ownedByA(make(fx.key));
    const chat = createClient(ChatService, make(otherKey));
    const wf = createClient(WorkflowService, make(otherKey));
    const before = fx.demo.emulator.stats().calls;

    expectNotFound(
      await rpcError(
        chat.chat({
          model: demoModels.tool,
          conversationId: a.conversationId,
          chatId: a.chatId,
          toolOutputs: [{ toolCallId: a.toolCallId, output: "stolen" }],
        }),
      ),
      "conversation_id",
    );
    expectNotFound(
      await rpcError(
        chat.chat({
          model: demoModels.bot,
          conversationId: a.conversationId,
          messages: [user("what did they say?")],
        }),
      ),
      "conversation_id",
    );
    expectNotFound(
      await rpcError(
        chat.chatStream({
          model: demoModels.bot,
          conversationId: a.conversationId,
          messages: [user("x")],
        }),
      ),
      "conversation_id",
    );
    expectNotFound(
      await rpcError(chat.cancelChat({ conversationId: a.conversationId, chatId: a.chatId })),
      "conversation_id",
    );
    expectNotFound(
      await rpcError(
        wf.getWorkflowRun({ model: demoModels.workflowAsync, executeId: a.executeId }),
      ),
      "execute_id",
    );
    expectNotFound(
      await rpcError(wf.watchWorkflow({ model: demoModels.workflowAsync, executeId: a.executeId })),
      "execute_id",
    );
    expectNotFound(
      await rpcError(
        wf.resumeWorkflow({
          model: demoModels.interrupt,
          eventId: a.eventId,
          resumeData: "Oslo",
          interruptType: 2,
        }),
      ),
      "event_id",
    );
    // Not one more call reached Coze for any of them.
    expect(fx.demo.emulator.stats().calls).toEqual(before);
  });

  it("refuses the raw Coze ids inside them, unless the key may name raw ids", async () => {
    const a = await ownedByA(make(fx.key));
    const other = createClient(WorkflowService, make(otherKey));
    const raw = createClient(WorkflowService, make(rawKey));
    const executeId = cozeIdOf(a.executeId);
    expectNotFound(
      await rpcError(other.getWorkflowRun({ model: demoModels.workflowAsync, executeId })),
      "execute_id",
    );
    const run = await raw.getWorkflowRun({ model: demoModels.workflowAsync, executeId });
    expect(run.status).toBe(RunStatus.RUNNING);
    // What the raw-id key gets back is bound to it, not to A.
    expect(run.executeId).toMatch(handed);
    expect(run.executeId).not.toBe(a.executeId);
  });
});

describe("ids under attack (property)", () => {
  it("answers NotFound for forged, truncated and altered ids, and never calls Coze", async () => {
    const a = await ownedByA(transports[0]?.[1](fx.key) as Transport);
    const wf = createClient(WorkflowService, transports[0]?.[1](fx.key) as Transport);
    const history = calls("workflow.history");
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.nat({ max: a.executeId.length - 1 }).map((n) => a.executeId.slice(0, n)),
          fc
            .tuple(fc.nat({ max: a.executeId.length - 1 }), fc.constantFrom(..."0aZ_-./"))
            .map(([i, c]) => a.executeId.slice(0, i) + c + a.executeId.slice(i + 1))
            .filter((id) => id !== a.executeId),
          fc.stringMatching(/^\d{19}\.[A-Za-z0-9_-]{22}$/),
          fc.string({ maxLength: 60 }),
        ),
        async (id) => {
          const err = await rpcError(
            wf.getWorkflowRun({ model: demoModels.workflowAsync, executeId: id }),
          );
          if (id === "") expect(err.code).toBe(Code.InvalidArgument);
          else expectNotFound(err, "execute_id");
        },
      ),
      { numRuns: 60 },
    );
    expect(calls("workflow.history")).toBe(history);
  });
});

describe("another key's ids over REST", () => {
  const client = (key: string) =>
    new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: key, maxRetries: 0 });

  it("refuses a tool output for another key's chat, even from a key limited to one bot", async () => {
    const first = await client(fx.key).chat.completions.create({
      model: demoModels.tool,
      messages: [{ role: "user", content: "Paris" }],
    });
    const call = first.choices[0]?.message.tool_calls?.[0];
    expect(call?.id).toMatch(/^call_/);
    for (const key of [otherKey, limitedKey]) {
      const err = await client(key)
        .chat.completions.create({
          model: "coze-echo",
          messages: [
            { role: "user", content: "Paris" },
            first.choices[0]?.message as OpenAI.ChatCompletionAssistantMessageParam,
            { role: "tool", tool_call_id: call?.id ?? "", content: "stolen" },
          ],
        })
        .then(
          () => expect.fail("accepted"),
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(OpenAI.NotFoundError);
      expect((err as InstanceType<typeof OpenAI.NotFoundError>).code).toBe("not_found");
    }
    expect(calls("chat.submit_tool_outputs")).toBe(0);
  });

  it("refuses another key's conversation, by body field and by header", async () => {
    const mine = await client(fx.key).chat.completions.create({
      model: "coze-echo",
      messages: [{ role: "user", content: "my secret is 42" }],
    });
    const conversation = (mine as unknown as { conversation_id: string }).conversation_id;
    expect(conversation).toMatch(handed);
    const chats = calls("chat");
    const byBody = await fetch(`${fx.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${otherKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "coze-echo",
        conversation_id: conversation,
        messages: [{ role: "user", content: "what was the secret?" }],
      }),
    });
    expect(byBody.status).toBe(404);
    expect(((await byBody.json()) as { error: unknown }).error).toMatchObject({
      code: "not_found",
    });
    const byHeader = await fetch(`${fx.url}/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${otherKey}`,
        "content-type": "application/json",
        "x-coze-conversation-id": conversation,
      },
      body: JSON.stringify({ model: "coze-echo", messages: [{ role: "user", content: "?" }] }),
    });
    expect(byHeader.status).toBe(404);
    expect(calls("chat")).toBe(chats);
  });

  it("refuses to resume another key's interrupt", async () => {
    const asked = await client(fx.key).chat.completions.create({
      model: demoModels.interrupt,
      messages: [{ role: "user", content: "weather please" }],
    });
    const interrupt = (asked as unknown as { interrupt: { event_id: string; type: number } })
      .interrupt;
    expect(interrupt.event_id).toMatch(handed);
    const res = await fetch(`${fx.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${otherKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: demoModels.interrupt,
        event_id: interrupt.event_id,
        interrupt_type: interrupt.type,
        messages: [{ role: "user", content: "Oslo" }],
      }),
    });
    expect(res.status).toBe(404);
    expect(calls("workflow.stream_resume")).toBe(0);
  });
});

describe("replicas and removed keys", () => {
  it("a replica with the same server secret opens the ids; once the key is gone they are dead", async () => {
    const a = await ownedByA(transports[0]?.[1](fx.key) as Transport);
    const replicaConfig = structuredClone(fx.demo.config);
    replicaConfig.server.port = 0;
    const replica = await startGateway({ config: replicaConfig });
    // The key rotated: same name, new secret. The old key's ids stay out of reach.
    const rotatedKey = "rotated-demo-key-0123456789abcdef";
    const rotatedConfig = structuredClone(fx.demo.config);
    rotatedConfig.server.port = 0;
    rotatedConfig.apiKeys = [
      { name: "demo", sha256: hashApiKey(rotatedKey), models: undefined, rawCozeIds: false },
    ];
    const rotated = await startGateway({ config: rotatedConfig });
    try {
      const onReplica = createClient(
        WorkflowService,
        createGrpcTransport({ baseUrl: replica.url, interceptors: [auth(fx.key)] }),
      );
      const run = await onReplica.getWorkflowRun({
        model: demoModels.workflowAsync,
        executeId: a.executeId,
      });
      expect(run.executeId).toBe(a.executeId);
      const afterRotation = createClient(
        WorkflowService,
        createGrpcTransport({ baseUrl: rotated.url, interceptors: [auth(rotatedKey)] }),
      );
      expectNotFound(
        await rpcError(
          afterRotation.getWorkflowRun({ model: demoModels.workflowAsync, executeId: a.executeId }),
        ),
        "execute_id",
      );
    } finally {
      await replica.close();
      await rotated.close();
    }
  });
});

describe("what Coze sees", () => {
  it("buys one token per key, shared by all of that key's concurrent calls", async () => {
    const config = structuredClone(fx.demo.config);
    config.server.port = 0;
    const cold = await startGateway({ config });
    try {
      fx.demo.emulator.reset();
      const chatAs = (key: string) =>
        createClient(
          ChatService,
          createGrpcTransport({ baseUrl: cold.url, interceptors: [auth(key)] }),
        ).chat({ model: demoModels.bot, messages: [user("hi")] });
      const keys = [fx.key, otherKey, rawKey];
      await Promise.all(keys.flatMap((key) => Array.from({ length: 20 }, () => chatAs(key))));
      const sessions = fx.demo.emulator.stats().tokensBySession;
      expect(Object.values(sessions)).toEqual([1, 1, 1]);
      for (const name of Object.keys(sessions)) expect(name).toMatch(/^gw_[A-Za-z0-9_-]{22}$/);
    } finally {
      await cold.close();
    }
  });

  it("one session per key: Coze itself keeps each key's conversations apart", async () => {
    const chat = (key: string) => createClient(ChatService, transports[0]?.[1](key) as Transport);
    const mine = await chat(fx.key).chat({ model: demoModels.bot, messages: [user("hi")] });
    // The raw-id key names A's conversation by its Coze id: the gateway lets it through, and
    // Coze refuses it, because the two keys' tokens carry different session names.
    const err = await rpcError(
      chat(rawKey).chat({
        model: demoModels.bot,
        conversationId: cozeIdOf(mine.conversationId),
        messages: [user("let me in")],
      }),
    );
    expect(err.code).toBe(Code.NotFound);
    expect(err.metadata.get("x-coze-code")).toBe("4002");
  });

  it("sends every key's chats under its own user id, whatever `user_id` the caller names", async () => {
    const ask = async (key: string, userId: string) =>
      JSON.parse(
        (
          await createClient(ChatService, transports[0]?.[1](key) as Transport).chat({
            model: demoModels.bot,
            userId,
            messages: [user("!received")],
          })
        ).answer,
      ).user_id as string;
    const mine = await ask(fx.key, "alice");
    expect(mine).toMatch(/^gw_[A-Za-z0-9_-]{22}$/);
    expect(await ask(otherKey, "alice")).not.toBe(mine);
    expect(await ask(otherKey, mine)).not.toBe(mine);
  });
});
