import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createContextKey,
  createContextValues,
  createRouterTransport,
  type Interceptor,
  type StreamRequest,
} from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { testCaller, testKey, withKey } from "../../test/support/test-server.js";
import { ChatService } from "../gen/cozegateway/v1/chat_pb.js";
import { ListModelsResponseSchema, ModelService } from "../gen/cozegateway/v1/model_pb.js";
import type { LogFn } from "../observability/index.js";
import { callerKey } from "./caller.js";
import {
  createAuthInterceptor,
  createDrainInterceptor,
  createErrorInterceptor,
  createStreamCutoffInterceptor,
} from "./interceptors.js";

const silent: LogFn = () => {};

const modelClient = (interceptors: Interceptor[], seen: unknown[] = []) =>
  createClient(
    ModelService,
    createRouterTransport(
      (router) =>
        router.service(ModelService, {
          listModels(_req, ctx) {
            seen.push(ctx.values.get(callerKey));
            return create(ListModelsResponseSchema, {});
          },
        }),
      { router: { interceptors } },
    ),
  );

describe("createAuthInterceptor", () => {
  const auth = createAuthInterceptor((key) => (key === testKey ? testCaller : undefined), silent);

  it("puts the authenticated caller into the handler context", async () => {
    const seen: unknown[] = [];
    await modelClient([auth], seen).listModels({}, withKey());
    expect(seen).toEqual([testCaller]);
  });

  it("stores the caller under the context key it is given", async () => {
    const serviceKey = createContextKey<typeof testCaller | undefined>(undefined);
    const seen: unknown[] = [];
    const client = createClient(
      ModelService,
      createRouterTransport(
        (router) =>
          router.service(ModelService, {
            listModels(_req, ctx) {
              seen.push(ctx.values.get(serviceKey), ctx.values.get(callerKey));
              return create(ListModelsResponseSchema, {});
            },
          }),
        {
          router: {
            interceptors: [createAuthInterceptor(() => testCaller, silent, serviceKey)],
          },
        },
      ),
    );
    await client.listModels({}, withKey());
    expect(seen).toEqual([testCaller, undefined]);
  });

  it("refuses a missing or unknown key before the service runs", async () => {
    const seen: unknown[] = [];
    for (const options of [{}, withKey("sk-nope"), { headers: { authorization: testKey } }]) {
      const err = await modelClient([auth], seen).listModels({}, options).catch(ConnectError.from);
      expect((err as ConnectError).code).toBe(Code.Unauthenticated);
    }
    expect(seen).toEqual([]);
  });
});

describe("createDrainInterceptor", () => {
  it("refuses calls with Unavailable once draining", async () => {
    let draining = false;
    const client = modelClient([createDrainInterceptor(() => draining)]);
    await client.listModels({});
    draining = true;
    const err = await client.listModels({}).catch(ConnectError.from);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
  });
});

describe("createStreamCutoffInterceptor", () => {
  it("ends a stream blocked in the service with the abort reason, and leaves finished streams alone", async () => {
    const cutoff = new AbortController();
    const chat = createClient(
      ChatService,
      createRouterTransport(
        (router) =>
          router.service(ChatService, {
            async *chatStream(req) {
              yield { event: { case: "started", value: {} } };
              if (req.model === "hang") await new Promise(() => {});
            },
          }),
        { router: { interceptors: [createStreamCutoffInterceptor(cutoff.signal)] } },
      ),
    );
    const done: unknown[] = [];
    for await (const e of chat.chatStream({ model: "quick" })) done.push(e.event.case);
    expect(done).toEqual(["started"]);

    const stream = chat.chatStream({ model: "hang" })[Symbol.asyncIterator]();
    await stream.next();
    cutoff.abort(new ConnectError("going away", Code.Unavailable));
    const err = await stream.next().catch(ConnectError.from);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect((err as ConnectError).rawMessage).toBe("going away");
  });
});

describe("createErrorInterceptor", () => {
  /** Runs the interceptor around a streaming `next` that fails with `error` after `abort`. */
  const failWith = async (error: unknown, abortReason?: unknown) => {
    const logged: unknown[] = [];
    const controller = new AbortController();
    const intercept = createErrorInterceptor((...line) => logged.push(line));
    const req = {
      stream: true,
      service: ChatService,
      method: ChatService.method.chatStream,
      signal: controller.signal,
      header: new Headers(),
      contextValues: createContextValues(),
      requestMethod: "POST",
      url: "http://x/cozegateway.v1.ChatService/ChatStream",
      message: (async function* () {})(),
    } as unknown as StreamRequest;
    if (abortReason !== undefined) controller.abort(abortReason);
    const thrown = await intercept(async () => {
      throw error;
    })(req).catch((e: unknown) => e);
    return { thrown: thrown as ConnectError, logged };
  };

  it("keeps a ConnectError as it is", async () => {
    const original = new ConnectError("bad model", Code.InvalidArgument);
    expect((await failWith(original)).thrown).toBe(original);
  });

  it("hides any other error behind Internal 'internal error' and logs its name only", async () => {
    const { thrown, logged } = await failWith(new RangeError("secret pat_XYZ"));
    expect(thrown.code).toBe(Code.Internal);
    expect(thrown.rawMessage).toBe("internal error");
    expect(JSON.stringify(logged)).toContain("RangeError");
    expect(JSON.stringify(logged)).not.toContain("pat_XYZ");
  });

  it("reports an error caused by an abort with the abort's reason, without logging it", async () => {
    const deadline = new ConnectError("the operation timed out", Code.DeadlineExceeded);
    const { thrown, logged } = await failWith(new Error("This operation was aborted"), deadline);
    expect(thrown).toBe(deadline);
    expect(logged).toEqual([]);
  });
});
