import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type HandlerContext } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTestTransport,
  startTestServer,
  stubRoutes,
  type TestServer,
  type TestTransport,
  testCaller,
  testKey,
  testProtocols,
  withKey,
} from "../../test/support/test-server.js";
import {
  ChatService,
  type ChatStreamRequest,
  type ChatStreamResponseSchema,
} from "../gen/cozegateway/v1/chat_pb.js";
import { ListModelsResponseSchema, ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { callerOf } from "../service/caller.js";

/** Text a crashing stub puts into its error; it must never reach a client or a log line. */
const secret = "upstream said: token pat_SECRET_abc123";

/** The stubs misbehave on request, as told by the x-test-mode header. */
const mode = (ctx: HandlerContext) => ctx.requestHeader.get("x-test-mode");

async function* chatStream(
  req: ChatStreamRequest,
  ctx: HandlerContext,
): AsyncGenerator<MessageInitShape<typeof ChatStreamResponseSchema>> {
  yield { event: { case: "started", value: { chatId: "chat-1" } } };
  if (mode(ctx) === "crash") throw new Error(secret);
  if (mode(ctx) === "quota") throw new ConnectError("quota exceeded", Code.ResourceExhausted);
  for (const word of (req.messages[0]?.content ?? "").split(" ")) {
    yield { event: { case: "delta", value: { messageId: "m-1", text: word } } };
  }
  yield { event: { case: "completed", value: {} } };
}

let ts: TestServer;

beforeAll(async () => {
  ts = await startTestServer({
    routes: stubRoutes({
      listModels(ctx) {
        if (mode(ctx) === "crash") throw new TypeError(secret);
        if (mode(ctx) === "not-found") throw new ConnectError("no such channel", Code.NotFound);
        return create(ListModelsResponseSchema, { models: [{ name: "bot-a", channel: "main" }] });
      },
      chatStream,
    }),
  });
});

afterAll(async () => {
  await ts.server.close();
  // Whatever happened in these tests, neither the key nor the upstream text was logged.
  const logged = JSON.stringify(ts.logs);
  expect(logged).not.toContain(testKey);
  expect(logged).not.toContain("pat_SECRET");
});

const collect = async <T>(stream: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = [];
  for await (const item of stream) out.push(item);
  return out;
};

const connectError = async (promise: Promise<unknown>): Promise<ConnectError> => {
  try {
    await promise;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected the call to fail");
};

describe.each(testProtocols)("%s", (protocol) => {
  let client: TestTransport;
  beforeAll(() => {
    client = createTestTransport(protocol, ts.server.url);
  });
  afterAll(() => client.close());
  const models = () => createClient(ModelService, client.transport);
  const chat = () => createClient(ChatService, client.transport);

  it("answers a unary call", async () => {
    const res = await models().listModels({}, withKey());
    expect(res.models.map((m) => [m.name, m.channel])).toEqual([["bot-a", "main"]]);
  });

  it("streams every message of a server-streaming call in order", async () => {
    const events = await collect(
      chat().chatStream({ messages: [{ content: "hello big world" }] }, withKey()),
    );
    expect(events.map((e) => e.event.case)).toEqual([
      "started",
      "delta",
      "delta",
      "delta",
      "completed",
    ]);
    expect(events.flatMap((e) => (e.event.case === "delta" ? [e.event.value.text] : []))).toEqual([
      "hello",
      "big",
      "world",
    ]);
  });

  it("refuses a unary call without a key with Unauthenticated", async () => {
    const err = await connectError(models().listModels({}));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toBe("missing or invalid API key");
  });

  it("refuses a stream with an unknown key before the service runs", async () => {
    const err = await connectError(
      collect(chat().chatStream({ messages: [{ content: "hi" }] }, withKey("sk-wrong"))),
    );
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toBe("missing or invalid API key");
  });

  it("relays a service's ConnectError with its code and message", async () => {
    const err = await connectError(
      models().listModels({}, { headers: { ...withKey().headers, "x-test-mode": "not-found" } }),
    );
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe("no such channel");
  });

  it("turns an unexpected unary error into Internal without its text", async () => {
    const err = await connectError(
      models().listModels({}, { headers: { ...withKey().headers, "x-test-mode": "crash" } }),
    );
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe("internal error");
  });

  it("ends a stream that fails midway with the error, after the messages sent so far", async () => {
    const received: string[] = [];
    const call = async () => {
      const stream = chat().chatStream(
        { messages: [{ content: "x" }] },
        { headers: { ...withKey().headers, "x-test-mode": "crash" } },
      );
      for await (const e of stream) received.push(e.event.case ?? "");
    };
    const err = await connectError(call());
    expect(received).toEqual(["started"]);
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe("internal error");

    const quota = await connectError(
      collect(
        chat().chatStream(
          { messages: [{ content: "x" }] },
          { headers: { ...withKey().headers, "x-test-mode": "quota" } },
        ),
      ),
    );
    expect(quota.code).toBe(Code.ResourceExhausted);
    expect(quota.rawMessage).toBe("quota exceeded");
  });

  it("refuses a request message over the body limit with ResourceExhausted", async () => {
    const big = "x".repeat(100 * 1024);
    const err = await connectError(
      collect(chat().chatStream({ messages: [{ content: big }] }, withKey())),
    );
    expect(err.code).toBe(Code.ResourceExhausted);
  });
});

describe("logging", () => {
  it("logs an unexpected service error by name only", () => {
    const line = ts.logs.find((l) => l.msg === "service failed with an unexpected error");
    expect(line?.level).toBe("error");
    expect(line?.fields).toMatchObject({
      procedure: "cozegateway.v1.ModelService/ListModels",
      error: "TypeError",
    });
  });

  it("logs rejected keys without the key", () => {
    const line = ts.logs.find((l) => l.msg === "rejected a call without a valid API key");
    expect(line?.level).toBe("warn");
  });
});

describe("registration", () => {
  it("requires a key even for a service registered with options of its own", async () => {
    const own = await startTestServer({
      routes: (router) => {
        router.service(
          ModelService,
          { listModels: () => create(ListModelsResponseSchema, {}) },
          { interceptors: [] },
        );
      },
    });
    const client = createTestTransport("Connect JSON over HTTP/1.1", own.server.url);
    try {
      const models = createClient(ModelService, client.transport);
      const err = await connectError(models.listModels({}));
      expect(err.code).toBe(Code.Unauthenticated);
      await models.listModels({}, withKey());
    } finally {
      client.close();
      await own.server.close();
    }
  });

  it("hands the authenticated caller to the services through their own callerOf()", async () => {
    const own = await startTestServer({
      routes: (router) => {
        router.service(ModelService, {
          listModels: (_req, ctx) =>
            create(ListModelsResponseSchema, {
              models: [{ name: callerOf(ctx)?.name ?? "no caller" }],
            }),
        });
      },
    });
    const client = createTestTransport("gRPC over HTTP/2", own.server.url);
    try {
      const res = await createClient(ModelService, client.transport).listModels({}, withKey());
      expect(res.models[0]?.name).toBe(testCaller.name);
    } finally {
      client.close();
      await own.server.close();
    }
  });
});
