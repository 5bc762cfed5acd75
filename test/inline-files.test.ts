import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { demoModels } from "../src/demo.js";
import {
  type ChatMessage,
  ChatMessageSchema,
  ChatService,
  Role,
} from "../src/gen/cozegateway/v1/chat_pb.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

// Issue #13: inline files are uploaded to Coze one by one before the turn; a request may carry
// at most 10 of them, of 20 MiB in all. More are refused before anything is uploaded.
let fx: GatewayFixture;
let openai: OpenAI;
beforeAll(async () => {
  // Room for more than 20 MiB of files in one request.
  fx = await startGatewayFixture({ bodyLimitBytes: 64 * 1024 * 1024 });
  openai = new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: fx.key, maxRetries: 0 });
});
afterAll(async () => {
  await fx?.close();
});
beforeEach(() => fx.demo.emulator.reset());

const uploads = () => fx.demo.emulator.stats().calls["files.upload"] ?? 0;
// A 1×1 PNG.
const png =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAghDmWQAAAABJRU5ErkJggg==";

const bearer: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${fx.key}`);
  return next(req);
};
const protocols = {
  gRPC: () => createGrpcTransport({ baseUrl: fx.url, interceptors: [bearer] }),
  "Connect binary": () =>
    createConnectTransport({
      baseUrl: fx.url,
      httpVersion: "1.1",
      useBinaryFormat: true,
      interceptors: [bearer],
    }),
};

/** A user message with `sizes.length` inline images of those sizes in bytes. */
function withImages(sizes: number[]): ChatMessage {
  return create(ChatMessageSchema, {
    role: Role.USER,
    content: "look",
    parts: sizes.map((size) => ({
      kind: {
        case: "image" as const,
        value: {
          source: {
            case: "data" as const,
            value: { data: new Uint8Array(size).fill(1), mimeType: "image/png" },
          },
        },
      },
    })),
  });
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );

describe("inline files over REST", () => {
  const ask = (count: number) =>
    openai.chat.completions.create({
      model: demoModels.bot,
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "look" },
            ...Array.from({ length: count }, () => ({
              type: "image_url" as const,
              image_url: { url: `data:image/png;base64,${png}` },
            })),
          ],
        },
      ],
    });

  it("takes 10 data: URLs, one upload each", async () => {
    const res = await ask(10);
    expect(res.choices[0]?.message.content).toContain("You said: look");
    expect(uploads()).toBe(10);
  });

  it("refuses an 11th with a 400 naming it, and uploads nothing", async () => {
    const err = await failure(ask(11));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({
      type: "invalid_request_error",
      param: "messages[0].content[11].image_url.url",
    });
    expect(uploads()).toBe(0);
  });
});

describe.each(Object.entries(protocols))("inline files over %s", (_name, transport) => {
  it("refuses an 11th file with InvalidArgument naming it, and uploads nothing", async () => {
    const chat = createClient(ChatService, transport());
    const err = ConnectError.from(
      await failure(
        chat.chat({ model: demoModels.bot, messages: [withImages(Array(11).fill(70))] }),
      ),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/^messages\[0\]\.parts\[10\]\.image\.data: /);
    expect(uploads()).toBe(0);
  });

  it("refuses files over 20 MiB in all with InvalidArgument naming the one past it, and uploads nothing", async () => {
    const chat = createClient(ChatService, transport());
    const mib = 1024 * 1024;
    const err = ConnectError.from(
      await failure(
        chat.chat({ model: demoModels.bot, messages: [withImages([8 * mib, 8 * mib, 8 * mib])] }),
      ),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/^messages\[0\]\.parts\[2\]\.image\.data: .*20 MiB/);
    expect(uploads()).toBe(0);
  });
});
