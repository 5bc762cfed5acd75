import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashApiKey } from "../src/config/index.js";
import { demoModels } from "../src/demo.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { ModelService } from "../src/gen/cozegateway/v1/model_pb.js";
import { RunStatus, WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

let fx: GatewayFixture;
const limitedKey = "limited-key-0123456789abcdef";
beforeAll(async () => {
  fx = await startGatewayFixture({
    apiKeys: [
      {
        name: "limited",
        sha256: hashApiKey(limitedKey),
        models: ["workflow:*"],
        rawCozeIds: false,
      },
    ],
  });
});
afterAll(async () => {
  await fx?.close();
});

const user = (content: string) => create(ChatMessageSchema, { role: Role.USER, content });

const transports: [string, (key: string) => Transport][] = [
  ["gRPC over h2c", (key) => createGrpcTransport({ baseUrl: fx.url, interceptors: [auth(key)] })],
  [
    "Connect JSON over HTTP/1.1",
    (key) =>
      createConnectTransport({
        baseUrl: fx.url,
        httpVersion: "1.1",
        useBinaryFormat: false,
        interceptors: [auth(key)],
      }),
  ],
  [
    "Connect binary over HTTP/1.1",
    (key) =>
      createConnectTransport({
        baseUrl: fx.url,
        httpVersion: "1.1",
        useBinaryFormat: true,
        interceptors: [auth(key)],
      }),
  ],
  [
    "gRPC-Web over HTTP/1.1",
    (key) =>
      createGrpcWebTransport({ baseUrl: fx.url, httpVersion: "1.1", interceptors: [auth(key)] }),
  ],
];

function auth(key: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
}

describe.each(transports)("the gateway over %s", (_name, make) => {
  it("answers a unary bot turn", async () => {
    const chat = createClient(ChatService, make(fx.key));
    const res = await chat.chat({ model: demoModels.bot, messages: [user("hello")] });
    expect(res.answer).toBe("You said: hello");
  });

  it("streams a bot turn: started first, deltas that add up to the answer, completed last", async () => {
    const chat = createClient(ChatService, make(fx.key));
    const kinds: string[] = [];
    let text = "";
    for await (const ev of chat.chatStream({
      model: demoModels.bot,
      messages: [user("one two three")],
    })) {
      kinds.push(ev.event.case ?? "");
      if (ev.event.case === "delta") text += ev.event.value.text;
    }
    expect(kinds[0]).toBe("started");
    expect(kinds.at(-1)).toBe("completed");
    expect(text).toBe("You said: one two three");
  });

  it("runs and streams workflows, keeping ids as strings", async () => {
    const wf = createClient(WorkflowService, make(fx.key));
    const res = await wf.runWorkflow({ model: demoModels.workflow, parameters: { input: "x" } });
    expect(res.status).toBe(RunStatus.SUCCEEDED);
    expect(res.outputJson).toBe('{"output":"x"}');
    expect(res.executeId).toMatch(/^\d{19}\.[A-Za-z0-9_-]{22}$/);
    const kinds: string[] = [];
    for await (const ev of wf.watchWorkflow({
      model: demoModels.workflowAsync,
      parameters: { input: "y", polls: 2 },
    })) {
      kinds.push(ev.event.case ?? "");
    }
    // The first progress event names the run before the first poll (issue 16).
    expect(kinds).toEqual(["progress", "progress", "progress", "result"]);
  });

  it("lists models", async () => {
    const models = createClient(ModelService, make(fx.key));
    const res = await models.listModels({});
    expect(res.models.map((m) => m.name)).toContain(demoModels.bot);
  });

  it("refuses a wrong API key with Unauthenticated, for unary and streams", async () => {
    const chat = createClient(ChatService, make("not-a-key"));
    const upstreamBefore = fx.demo.emulator.stats().calls.chat ?? 0;
    const unary = await chat
      .chat({ model: demoModels.bot, messages: [user("x")] })
      .catch((e: unknown) => e);
    expect(ConnectError.from(unary).code).toBe(Code.Unauthenticated);
    let streamErr: unknown;
    try {
      for await (const _ of chat.chatStream({ model: demoModels.bot, messages: [user("x")] }));
    } catch (e) {
      streamErr = e;
    }
    expect(ConnectError.from(streamErr).code).toBe(Code.Unauthenticated);
    expect(fx.demo.emulator.stats().calls.chat ?? 0).toBe(upstreamBefore);
  });

  it("ends a failed turn with an error status, never with completed", async () => {
    const chat = createClient(ChatService, make(fx.key));
    const kinds: string[] = [];
    let err: unknown;
    try {
      for await (const ev of chat.chatStream({
        botId: "7390000000000000004",
        messages: [user("fail")],
      })) {
        kinds.push(ev.event.case ?? "");
      }
    } catch (e) {
      err = e;
    }
    expect(ConnectError.from(err).code).toBe(Code.Unknown);
    expect(kinds).not.toContain("completed");
  });
});

describe("per-key model allow-lists through the real server", () => {
  it("lets a limited key use only its models, in every protocol", async () => {
    for (const [, make] of transports) {
      const transport = make(limitedKey);
      const err = await createClient(ChatService, transport)
        .chat({ model: demoModels.bot, messages: [user("x")] })
        .catch((e: unknown) => ConnectError.from(e));
      expect((err as ConnectError).code).toBe(Code.PermissionDenied);
      const ok = await createClient(WorkflowService, transport).runWorkflow({
        model: demoModels.workflow,
        parameters: { input: "allowed" },
      });
      expect(ok.outputJson).toBe('{"output":"allowed"}');
      // Only the workflows discovery found in the demo space match workflow:*.
      const listed = await createClient(ModelService, transport).listModels({});
      expect(listed.models.length).toBe(5);
      expect(listed.models.every((m) => m.name.startsWith("workflow:") && m.discovered)).toBe(true);
    }
  });
});
