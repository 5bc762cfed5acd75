import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoConfig, demoModels } from "../src/demo.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { type EmulatorProcess, startEmulatorProcess } from "./support/emulator-process.js";

// Issue #5 "Load": 1000 concurrent streams opened, held and finished through the gateway with
// no error. The emulator runs in its own process, as Coze would, pacing events a second apart so
// each stream lasts about thirteen seconds: opening all of them took up to four seconds while
// the rest of the suite ran beside this file on a busy two-core machine, and the margin must
// hold there too; "held" means every stream had started before the first one finished.
const streams = 1000;
const key = "load-test-key-0123456789abcdef";

let emulator: EmulatorProcess;
let gateway: Gateway;
beforeAll(async () => {
  emulator = await startEmulatorProcess({ timing: { deltaMs: 1000 } });
  // No discovery: its lists buy the channel's own token, besides the key's session token this
  // test counts.
  const config = demoConfig({
    emulatorUrl: emulator.url,
    app: emulator.app,
    apiKey: key,
    port: 0,
    discovery: false,
  });
  // Capacity, not tenant limits (issue 13): one key on one connection holds every stream.
  config.server.maxConcurrentStreams = streams;
  config.server.maxStreamsPerKey = streams;
  gateway = await startGateway({ config });
});
afterAll(async () => {
  await gateway?.close();
  await emulator?.close();
});

describe("load", () => {
  it(`holds ${streams} concurrent gRPC streams open and finishes them all without error`, async () => {
    const chat = createClient(
      ChatService,
      createGrpcTransport({
        baseUrl: gateway.url,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${key}`);
            return next(req);
          },
        ],
      }),
    );
    let open = 0;
    let peak = 0;
    let startedBeforeFirstEnd = -1;
    const text = "one two three four five six seven eight nine ten";
    const results = await Promise.all(
      Array.from({ length: streams }, async (_, i) => {
        let answer = "";
        let completed = false;
        for await (const ev of chat.chatStream({
          model: demoModels.bot,
          messages: [create(ChatMessageSchema, { role: Role.USER, content: `${i} ${text}` })],
        })) {
          if (ev.event.case === "started") peak = Math.max(peak, ++open);
          if (ev.event.case === "delta") answer += ev.event.value.text;
          if (ev.event.case === "completed") {
            completed = true;
            if (startedBeforeFirstEnd < 0) startedBeforeFirstEnd = peak;
            open--;
          }
        }
        return { i, answer, completed };
      }),
    );
    for (const r of results) {
      expect(r.completed).toBe(true);
      expect(r.answer).toBe(`You said: ${r.i} ${text}`);
    }
    expect(startedBeforeFirstEnd).toBe(streams);
    const stats = await emulator.stats();
    expect(stats.calls.chat).toBe(streams);
    expect(stats.tokenRequests).toBe(1);
    await expect.poll(async () => (await emulator.stats()).openStreams).toBe(0);
  }, 90_000);
});
