import { request as httpRequest } from "node:http";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCertificate } from "../../test/support/certificates.js";
import {
  openReflection,
  type ReflectionResponse,
  type ReflectionStream,
} from "../../test/support/reflection-stream.js";
import {
  createTestTransport,
  startTestServer,
  type TestServer,
  type TestTransport,
  testLimits,
  withKey,
} from "../../test/support/test-server.js";
import { ChatService } from "../gen/cozegateway/v1/chat_pb.js";
import { ModelService } from "../gen/cozegateway/v1/model_pb.js";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { reflectionNeedsHttp2Message } from "./reflection-http.js";

const allServices = [
  "cozegateway.v1.ModelService",
  "cozegateway.v1.ChatService",
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];

const versions = [
  ["grpc.reflection.v1", v1.ServerReflection],
  ["grpc.reflection.v1alpha", v1alpha.ServerReflection],
] as const;

/** The file names in a file_descriptor_response, in order. */
function fileNames(res: ReflectionResponse): string[] {
  if (res.messageResponse.case !== "fileDescriptorResponse") {
    throw new Error(`expected files, got ${res.messageResponse.case}`);
  }
  return res.messageResponse.value.fileDescriptorProto.map(
    (b) => fromBinary(FileDescriptorProtoSchema, b).name,
  );
}

function errorOf(res: ReflectionResponse): { errorCode: number; errorMessage: string } {
  if (res.messageResponse.case !== "errorResponse") {
    throw new Error(`expected an error, got ${res.messageResponse.case}`);
  }
  const { errorCode, errorMessage } = res.messageResponse.value;
  return { errorCode, errorMessage };
}

describe("gRPC server reflection on the gateway server", () => {
  let ts: TestServer;
  let grpc: TestTransport;
  const streams: ReflectionStream[] = [];
  const open = (service: (typeof versions)[number][1] = v1.ServerReflection, key?: string) => {
    const s = openReflection(service, grpc.transport, key === undefined ? {} : withKey(key));
    streams.push(s);
    return s;
  };

  beforeAll(async () => {
    ts = await startTestServer();
    grpc = createTestTransport("gRPC over HTTP/2", ts.server.url);
  });
  afterAll(async () => {
    for (const s of streams) s.cancel();
    grpc.close();
    await ts.server.close();
  });

  it.each(versions)(
    "%s lists our services, health and reflection without an API key",
    async (_, service) => {
      const res = await open(service).ask({ messageRequest: { case: "listServices", value: "*" } });
      expect(res.messageResponse).toMatchObject({
        case: "listServicesResponse",
        value: { service: allServices.map((name) => ({ name })) },
      });
    },
  );

  it.each(versions)(
    "%s answers each request of one stream in turn, each file once",
    async (_, service) => {
      const s = open(service);
      const chat = await s.ask({
        host: "gateway.example",
        messageRequest: { case: "fileByFilename", value: "cozegateway/v1/chat.proto" },
      });
      expect(chat.validHost).toBe("gateway.example");
      expect(chat.originalRequest?.messageRequest).toEqual({
        case: "fileByFilename",
        value: "cozegateway/v1/chat.proto",
      });
      // The asked file first, then its imports.
      expect(fileNames(chat)).toEqual([
        "cozegateway/v1/chat.proto",
        "cozegateway/v1/common.proto",
        "google/protobuf/struct.proto",
      ]);
      const model = await s.ask({
        messageRequest: { case: "fileContainingSymbol", value: "cozegateway.v1.ModelService" },
      });
      expect(fileNames(model)).toEqual(["cozegateway/v1/model.proto"]);
      // Already sent on this stream: only the asked file again, none of its imports.
      const again = await s.ask({
        messageRequest: {
          case: "fileContainingSymbol",
          value: "cozegateway.v1.ChatService.ChatStream",
        },
      });
      expect(fileNames(again)).toEqual(["cozegateway/v1/chat.proto"]);
      // A new stream starts afresh.
      const fresh = await open(service).ask({
        messageRequest: { case: "fileContainingSymbol", value: "cozegateway.v1.ChatRequest" },
      });
      expect(fileNames(fresh)).toHaveLength(3);
      await expect(s.end()).resolves.toBe("ended");
    },
  );

  it.each(versions)(
    "%s answers an unknown symbol with NOT_FOUND and keeps the stream open",
    async (_, service) => {
      const s = open(service);
      const unknown = await s.ask({
        messageRequest: { case: "fileContainingSymbol", value: "cozegateway.v1.NoSuchService" },
      });
      expect(errorOf(unknown)).toEqual({
        errorCode: Code.NotFound,
        errorMessage: "symbol not found: cozegateway.v1.NoSuchService",
      });
      expect(unknown.originalRequest?.messageRequest.value).toBe("cozegateway.v1.NoSuchService");
      const after = await s.ask({
        messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.Health" },
      });
      expect(fileNames(after)).toEqual(["grpc/health/v1/health.proto"]);
    },
  );

  it("answers every other question it cannot answer with the right code", async () => {
    const s = open();
    const answers = [];
    for (const messageRequest of [
      { case: "fileByFilename", value: "cozegateway/v1/secret.proto" },
      { case: "fileByFilename", value: "/etc/passwd" },
      {
        case: "fileContainingExtension",
        value: { containingType: "cozegateway.v1.ChatRequest", extensionNumber: 1000 },
      },
      { case: "allExtensionNumbersOfType", value: "cozegateway.v1.NoSuchMessage" },
      { case: "allExtensionNumbersOfType", value: "cozegateway.v1.ChatService" },
      { case: undefined },
    ] as const) {
      answers.push(errorOf(await s.ask({ messageRequest })));
    }
    expect(answers).toEqual([
      { errorCode: Code.NotFound, errorMessage: "file not found: cozegateway/v1/secret.proto" },
      { errorCode: Code.NotFound, errorMessage: "file not found: /etc/passwd" },
      {
        errorCode: Code.NotFound,
        errorMessage: "extension 1000 of cozegateway.v1.ChatRequest not found",
      },
      {
        errorCode: Code.NotFound,
        errorMessage: "message type not found: cozegateway.v1.NoSuchMessage",
      },
      {
        errorCode: Code.NotFound,
        errorMessage: "message type not found: cozegateway.v1.ChatService",
      },
      { errorCode: Code.InvalidArgument, errorMessage: expect.stringContaining("list_services") },
    ]);
  });

  it("lists no extension numbers of a message type that has none", async () => {
    const res = await open().ask({
      messageRequest: { case: "allExtensionNumbersOfType", value: "cozegateway.v1.ChatRequest" },
    });
    expect(res.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "cozegateway.v1.ChatRequest", extensionNumber: [] },
    });
  });

  it("shows at most 200 characters of a long unknown name, and refuses an oversized request", async () => {
    const s = open();
    const long = `x${"y".repeat(10_000)}`;
    const { errorMessage } = errorOf(
      await s.ask({ messageRequest: { case: "fileContainingSymbol", value: long } }),
    );
    expect(errorMessage.length).toBeLessThan(230);
    // The test server takes messages up to 64 KiB.
    const huge = open();
    const err = await huge
      .ask({ messageRequest: { case: "fileContainingSymbol", value: "z".repeat(70_000) } })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
  });

  it("answers with a wrong key too, and never lets a real call through without a valid one", async () => {
    const s = open(v1.ServerReflection, "wrong-key");
    const res = await s.ask({ messageRequest: { case: "listServices", value: "" } });
    expect(res.messageResponse.case).toBe("listServicesResponse");
    // The same HTTP/2 connection, right after reflection answered.
    const models = createClient(ModelService, grpc.transport);
    const chat = createClient(ChatService, grpc.transport);
    for (const call of [
      () => models.listModels({}),
      () => models.listModels({}, withKey("wrong-key")),
      async () => {
        for await (const _ of chat.chatStream({ messages: [{ content: "hi" }] })) {
          // never reached
        }
      },
    ]) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.Unauthenticated);
    }
    const allowed = await models.listModels({}, withKey());
    expect(allowed.models.map((m) => m.name)).toEqual(["bot-a", "bot-b"]);
  });

  it.each([
    [
      "another method of the reflection service",
      "/grpc.reflection.v1.ServerReflection/ListServices",
      404,
    ],
    [
      "a real RPC dressed as reflection",
      "/grpc.reflection.v1.ServerReflection/../../cozegateway.v1.ModelService/ListModels",
      404,
    ],
    [
      "a real RPC with the reflection path in its query",
      "/cozegateway.v1.ModelService/ListModels?/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      401,
    ],
    ["a real RPC", "/cozegateway.v1.ModelService/ListModels", 401],
  ])("exempts only the reflection method: %s without a key is refused", async (_, path, status) => {
    const res = await postJson(ts.server.url, path);
    expect(res.status).toBe(status);
    expect(res.body).not.toContain("bot-a");
  });

  it("accounts each reflection stream in the request log", async () => {
    const s = open();
    await s.ask({ messageRequest: { case: "listServices", value: "" } });
    await s.end();
    const lines = ts.logs.filter(
      (l) =>
        l.msg === "request" &&
        l.fields?.method === "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    );
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.at(-1)?.fields).toMatchObject({ code: "ok", caller: undefined });
  });

  it.each([
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
  ])(
    "tells an HTTP/1.1 caller of %s that reflection needs HTTP/2, and closes the connection",
    async (path) => {
      const res = await postJson(ts.server.url, path, "application/grpc-web+proto");
      expect(res.status).toBe(505);
      expect(res.headers.connection).toBe("close");
      expect(JSON.parse(res.body)).toEqual({
        error: { code: "http_version_not_supported", message: reflectionNeedsHttp2Message },
      });
    },
  );
});

/**
 * A POST over HTTP/1.1 with a Connect JSON body `{}` to `path` as it is (no dot segments
 * resolved): its status, headers and body.
 */
function postJson(
  base: string,
  path: string,
  contentType = "application/json",
): Promise<{ status?: number; headers: Record<string, unknown>; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { hostname, port, path, method: "POST", headers: { "content-type": contentType } },
      (r) => {
        let body = "";
        r.setEncoding("utf8");
        r.on("data", (c: string) => {
          body += c;
        });
        r.on("end", () => resolve({ status: r.statusCode, headers: r.headers, body }));
      },
    );
    req.on("error", reject);
    req.end("{}");
  });
}

describe("gRPC server reflection over TLS", () => {
  it("answers over h2 negotiated by ALPN", async () => {
    const certificate = createTestCertificate();
    const { server } = await startTestServer({ tls: certificate });
    const grpc = createTestTransport("gRPC over HTTP/2", server.url, certificate.cert);
    try {
      const s = openReflection(v1.ServerReflection, grpc.transport, {});
      const res = await s.ask({
        messageRequest: { case: "fileContainingSymbol", value: "cozegateway.v1.ChatService" },
      });
      expect(fileNames(res)[0]).toBe("cozegateway/v1/chat.proto");
      await s.end();
    } finally {
      grpc.close();
      await server.close();
    }
  });
});

describe("gRPC server reflection at shutdown", () => {
  it("ends an open reflection stream with Unavailable without waiting for the grace period", async () => {
    const { server } = await startTestServer({ shutdownGraceMs: 30_000 });
    const grpc = createTestTransport("gRPC over HTTP/2", server.url);
    try {
      const s = openReflection(v1.ServerReflection, grpc.transport, {});
      await s.ask({ messageRequest: { case: "listServices", value: "" } });
      const started = performance.now();
      const closed = server.close();
      const err = await s
        .ask({ messageRequest: { case: "listServices", value: "" } })
        .catch((e: unknown) => ConnectError.from(e));
      expect((err as ConnectError).code).toBe(Code.Unavailable);
      await closed;
      expect(performance.now() - started).toBeLessThan(10_000);
    } finally {
      grpc.close();
      await server.close();
    }
  });
});

describe("gRPC server reflection and the request timeout", () => {
  it("resets a keyless reflection stream still open after the request timeout", async () => {
    const limits = { ...testLimits, headersTimeoutMs: 200, requestTimeoutMs: 300 };
    const { server } = await startTestServer({ limits });
    const grpc = createTestTransport("gRPC over HTTP/2", server.url);
    try {
      const s = openReflection(v1.ServerReflection, grpc.transport, {});
      const started = performance.now();
      await s.ask({ messageRequest: { case: "listServices", value: "" } });
      // The client never half-closes; the server's deadline for the request ends the stream.
      const err = ConnectError.from(await s.failure());
      expect(err.code).toBe(Code.Canceled);
      expect(performance.now() - started).toBeGreaterThanOrEqual(limits.requestTimeoutMs - 50);
    } finally {
      grpc.close();
      await server.close();
    }
  });
});
