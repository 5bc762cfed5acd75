import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Agent, request } from "undici";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { TokenCache, TokenCacheStats, TokenSource } from "../src/coze/token-cache.js";
import { demoConfig, demoModels } from "../src/demo.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { type EmulatorProcess, startEmulatorProcess } from "./support/emulator-process.js";

// Issue #6 "Deterministic tests (counts, not times)": the token herd and the steady state,
// through the whole gateway over REST and gRPC, against the emulator in its own process.
//
// The gateway's own modules are wrapped, not replaced: every JWT it signs is counted, every
// token a request asks for is counted, and the token request can be held at a gate, so a test
// can first see all its requests waiting on the one cold token and only then let it through.
const probe = vi.hoisted(() => ({
  jwtsSigned: 0,
  getTokenCalls: 0,
  /** While set, token requests wait for it before they are sent. */
  gate: undefined as Promise<void> | undefined,
  caches: [] as { stats(): TokenCacheStats }[],
}));

vi.mock("../src/coze/jwt.js", async (importOriginal) => {
  const mod = await importOriginal<typeof import("../src/coze/jwt.js")>();
  return {
    ...mod,
    signCozeJwt: (...args: Parameters<typeof mod.signCozeJwt>) => {
      probe.jwtsSigned++;
      return mod.signCozeJwt(...args);
    },
  };
});

vi.mock("../src/coze/token-endpoint.js", async (importOriginal) => {
  const mod = await importOriginal<typeof import("../src/coze/token-endpoint.js")>();
  return {
    ...mod,
    requestAccessToken: async (...args: Parameters<typeof mod.requestAccessToken>) => {
      await probe.gate;
      return mod.requestAccessToken(...args);
    },
  };
});

vi.mock("../src/coze/token-cache.js", async (importOriginal) => {
  const mod = await importOriginal<typeof import("../src/coze/token-cache.js")>();
  return {
    ...mod,
    createTokenCache: (...args: Parameters<typeof mod.createTokenCache>): TokenCache => {
      const cache = mod.createTokenCache(...args);
      probe.caches.push(cache);
      return {
        ...cache,
        source(credential) {
          const source = cache.source(credential);
          const counted: TokenSource = {
            key: source.key,
            // A request asks once: from the cache at once, or else through getToken.
            cachedToken() {
              const token = source.cachedToken();
              if (token !== undefined) probe.getTokenCalls++;
              return token;
            },
            getToken(signal) {
              probe.getTokenCalls++;
              return source.getToken(signal);
            },
            invalidate: (token) => source.invalidate(token),
          };
          return counted;
        },
      };
    },
  };
});

const herd = 1000;
const key = "perf-counts-key-0123456789abcdef";
const question = "Hello";
const answer = `You said: ${question}`;

let emulator: EmulatorProcess;
let gateway: Gateway | undefined;
let client: Agent;

beforeAll(async () => {
  emulator = await startEmulatorProcess({ timing: { deltaMs: 0 } });
});
afterAll(async () => {
  await emulator?.close();
});

/** A cold gateway: its own pools and token cache, nothing fetched yet. */
beforeEach(async () => {
  await fetch(`${emulator.url}/__emulator/reset`, { method: "POST" }).then((r) => r.arrayBuffer());
  probe.jwtsSigned = 0;
  probe.getTokenCalls = 0;
  probe.gate = undefined;
  probe.caches = [];
  // No discovery: its lists at start would fetch the token before the herd arrives.
  const config = demoConfig({
    emulatorUrl: emulator.url,
    app: emulator.app,
    apiKey: key,
    port: 0,
    discovery: false,
  });
  // Counts, not tenant limits (issue 13): one key, and one gRPC connection, carry the whole herd.
  config.server.maxConcurrentStreams = herd;
  config.server.maxStreamsPerKey = herd;
  gateway = await startGateway({ config });
  // Enough sockets for every REST request of the herd at once (HTTP/1.1: one request each).
  client = new Agent({ connections: herd });
});
afterEach(async () => {
  await client?.close();
  await gateway?.close();
  gateway = undefined;
});

/** A non-stream REST chat; resolves with the answer text, or rejects with the status. */
async function restChat(url: string): Promise<string> {
  const res = await request(`${url}/v1/chat/completions`, {
    method: "POST",
    dispatcher: client,
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({
      model: demoModels.bot,
      messages: [{ role: "user", content: question }],
    }),
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text}`);
  return (JSON.parse(text) as { choices: { message: { content: string } }[] }).choices[0]?.message
    .content as string;
}

/** A gRPC ChatService client over one HTTP/2 connection. */
function grpcChat(url: string) {
  const chat = createClient(
    ChatService,
    createGrpcTransport({
      baseUrl: url,
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${key}`);
          return next(req);
        },
      ],
    }),
  );
  return async () =>
    (
      await chat.chat({
        model: demoModels.bot,
        messages: [create(ChatMessageSchema, { role: Role.USER, content: question })],
      })
    ).answer;
}

/** Holds every token request until the returned function is called. */
function closeGate(): () => void {
  let open = () => {};
  probe.gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  return open;
}

/**
 * The herd: `herd` requests sent at once to a cold gateway. The token request is held until every
 * one of them is waiting for the token, so they really are concurrent; then it is let through.
 */
async function coldHerd(send: () => Promise<string>): Promise<void> {
  const open = closeGate();
  const answers = Array.from({ length: herd }, () => send());
  // Every request is in the gateway and waits on the same cold token...
  await expect.poll(() => probe.getTokenCalls, { timeout: 30_000, interval: 20 }).toBe(herd);
  // ...for which one JWT was signed, and whose one request is held before it is sent.
  expect(probe.jwtsSigned).toBe(1);
  expect((await emulator.stats()).tokenRequests).toBe(0);
  open();
  for (const a of await Promise.all(answers)) expect(a).toBe(answer);
  const stats = await emulator.stats();
  expect(stats.tokenRequests).toBe(1);
  expect(stats.calls.chat).toBe(herd);
  expect(probe.jwtsSigned).toBe(1);
}

describe("token herd (issue #6)", () => {
  it(`signs one JWT and sends one token request for ${herd} concurrent cold REST requests`, async () => {
    await coldHerd(() => restChat(gateway?.url as string));
  }, 60_000);

  it(`signs one JWT and sends one token request for ${herd} concurrent cold gRPC calls`, async () => {
    await coldHerd(grpcChat(gateway?.url as string));
  }, 60_000);
});

describe("steady state (issue #6)", () => {
  it("sends no token request on the request path while the token is fresh", async () => {
    const url = gateway?.url as string;
    const grpc = grpcChat(url);
    expect(await restChat(url)).toBe(answer);
    expect((await emulator.stats()).tokenRequests).toBe(1);
    const cache = probe.caches[0] as { stats(): TokenCacheStats };
    const before = cache.stats();
    const calls = probe.getTokenCalls;

    const many = 250;
    for (let round = 0; round < 4; round++) {
      const answers = await Promise.all(
        Array.from({ length: many }, (_, i) => (i % 2 === 0 ? restChat(url) : grpc())),
      );
      for (const a of answers) expect(a).toBe(answer);
    }

    const after = cache.stats();
    // Every request asked for a token, and every one was answered from the cache.
    expect(probe.getTokenCalls - calls).toBe(4 * many);
    expect(after.cacheHits - before.cacheHits).toBe(4 * many);
    expect(after.tokenRequests).toBe(before.tokenRequests);
    expect(after.backgroundRefreshes).toBe(0);
    expect(probe.jwtsSigned).toBe(1);
    expect((await emulator.stats()).tokenRequests).toBe(1);
  }, 60_000);
});
