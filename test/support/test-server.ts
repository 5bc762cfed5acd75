import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext, Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import {
  ChatService,
  type ChatStreamRequest,
  type ChatStreamResponseSchema,
} from "../../src/gen/cozegateway/v1/chat_pb.js";
import {
  type ListModelsResponse,
  ListModelsResponseSchema,
  ModelKind,
  ModelService,
} from "../../src/gen/cozegateway/v1/model_pb.js";
import { type Caller, callerKey } from "../../src/server/caller.js";
import type { ConnectionLimits } from "../../src/server/connection-limits.js";
import type { Door } from "../../src/server/doors.js";
import {
  type GatewayServer,
  type GatewayServerOptions,
  startGatewayServer,
} from "../../src/server/gateway-server.js";
import type { NodeRequest, NodeResponse } from "../../src/server/http-response.js";
import { inProcessTenant } from "../../src/service/tenant.js";

/**
 * Test support for the server: stub services, a server on 127.0.0.1:0 and real client
 * transports.
 */

/** The API key the test server accepts. A made-up value, never a real credential. */
export const testKey = "sk-test-0123456789abcdef";

/** The caller `testKey` authenticates as. */
export const testCaller: Caller = {
  name: "tester",
  models: ["bot-a", "bot-b"],
  tenant: inProcessTenant,
};

/** Per-test behaviour of the stub services; the defaults echo the caller and the input. */
export interface StubBehaviour {
  listModels?: (ctx: HandlerContext) => Promise<ListModelsResponse> | ListModelsResponse;
  chatStream?: (
    req: ChatStreamRequest,
    ctx: HandlerContext,
  ) => AsyncIterable<MessageInitShape<typeof ChatStreamResponseSchema>>;
}

/**
 * Registers stub `ModelService` (unary) and `ChatService.ChatStream` (server streaming). By
 * default ListModels lists the caller's models on a channel named after the caller, and
 * ChatStream sends `started`, one delta per word of the first message, and `completed`.
 */
export function stubRoutes(behaviour: StubBehaviour = {}): (router: ConnectRouter) => void {
  return (router) => {
    router.service(ModelService, {
      listModels(_req, ctx) {
        if (behaviour.listModels) return behaviour.listModels(ctx);
        const caller = ctx.values.get(callerKey);
        return create(ListModelsResponseSchema, {
          models: (caller?.models ?? []).map((name) => ({
            name,
            kind: ModelKind.BOT,
            channel: caller?.name ?? "nobody",
          })),
        });
      },
    });
    router.service(ChatService, {
      async *chatStream(req, ctx) {
        if (behaviour.chatStream) {
          yield* behaviour.chatStream(req, ctx);
          return;
        }
        yield { event: { case: "started", value: { chatId: "chat-1", conversationId: "conv-1" } } };
        for (const word of (req.messages[0]?.content ?? "").split(" ")) {
          yield { event: { case: "delta", value: { messageId: "m-1", text: word } } };
        }
        yield { event: { case: "completed", value: {} } };
      },
    });
  };
}

/** A handler of {@link testDoor}: the caller is authenticated already. */
export type TestDoorHandler = (
  req: NodeRequest,
  res: NodeResponse,
  caller: Caller,
  shutdown: AbortSignal,
  hardStop: AbortSignal,
) => boolean | Promise<boolean>;

/**
 * A door that needs a key, mounted at `/v1` like the OpenAI-compatible API, serving `handle`;
 * the server's refusals keep its own wording.
 */
export function testDoor(handle: TestDoorHandler): Door {
  return {
    path: "/v1",
    auth: "key",
    label: (method) => `${method} /v1`,
    handle: (req, res, call) =>
      handle(req, res, call.caller as Caller, call.shutdown, call.hardStop),
  };
}

/** One captured log line. */
export interface LogLine {
  level: "info" | "warn" | "error";
  msg: string;
  fields?: Record<string, unknown>;
}

/** A server started by {@link startTestServer}, with the log lines it wrote. */
export interface TestServer {
  server: GatewayServer;
  logs: LogLine[];
}

/**
 * The limits of {@link startTestServer}: the config defaults (30 s idle, 10 s headers, 30 s
 * request, 100 streams per connection), but 1000 requests in flight per key.
 */
export const testLimits: ConnectionLimits = {
  idleTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxConcurrentStreams: 100,
  maxStreamsPerKey: 1000,
};

/**
 * Starts a gateway server on 127.0.0.1:0 with the stub routes, `testKey` as the only valid key,
 * a key door at `/v1` that serves nothing, a 64 KiB body limit, a 2 s grace period and
 * {@link testLimits}; `overrides` replace any option.
 */
export async function startTestServer(
  overrides: Partial<GatewayServerOptions> = {},
): Promise<TestServer> {
  const logs: LogLine[] = [];
  const server = await startGatewayServer({
    host: "127.0.0.1",
    port: 0,
    corsOrigins: [],
    routes: stubRoutes(),
    authenticate: (key) => (key === testKey ? testCaller : undefined),
    bodyLimitBytes: 64 * 1024,
    shutdownGraceMs: 2000,
    limits: testLimits,
    doors: [testDoor(() => false)],
    log: (level, msg, fields) => logs.push({ level, msg, ...(fields ? { fields } : {}) }),
    ...overrides,
  });
  return { server, logs };
}

/** The client protocols the server is tested with. */
export const testProtocols = [
  "gRPC over HTTP/2",
  "Connect JSON over HTTP/1.1",
  "Connect binary over HTTP/1.1",
  "gRPC-Web over HTTP/1.1",
] as const;

/** One of {@link testProtocols}. */
export type TestProtocol = (typeof testProtocols)[number];

/** A client transport of one protocol, with a way to drop its connections. */
export interface TestTransport {
  transport: Transport;
  /** Closes every connection the transport opened. */
  close(): void;
}

/**
 * Creates a real client transport for `protocol`: gRPC over HTTP/2 (h2c, or h2 over TLS when
 * `ca` is given), or Connect JSON, Connect binary or gRPC-Web over HTTP/1.1 (HTTPS with `ca`).
 * Each has its own connections, so `close()` leaves no open handle.
 */
export function createTestTransport(
  protocol: TestProtocol,
  baseUrl: string,
  ca?: string,
): TestTransport {
  if (protocol === "gRPC over HTTP/2") {
    const sessions = new Http2SessionManager(baseUrl, {}, ca ? { ca } : {});
    return {
      transport: createGrpcTransport({ baseUrl, sessionManager: sessions }),
      close: () => sessions.abort(),
    };
  }
  const agent = ca ? new HttpsAgent({ keepAlive: true, ca }) : new HttpAgent({ keepAlive: true });
  const nodeOptions = { agent };
  const transport =
    protocol === "gRPC-Web over HTTP/1.1"
      ? createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions })
      : createConnectTransport({
          baseUrl,
          httpVersion: "1.1",
          useBinaryFormat: protocol === "Connect binary over HTTP/1.1",
          nodeOptions,
        });
  return { transport, close: () => agent.destroy() };
}

/** Call options that present `key` (default {@link testKey}) as a bearer token. */
export function withKey(key: string = testKey): { headers: Record<string, string> } {
  return { headers: { authorization: `Bearer ${key}` } };
}
