import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type ReloadChannel,
  type ReloadGateway,
  startReloadGateway,
} from "../test/support/reload-fixture.js";
import { type GatewayConfig, loadConfig } from "./config/index.js";
import { catalog, type Emulator, startEmulator } from "./emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "./gen/cozegateway/v1/chat_pb.js";

// Issue 15: reloads run one at a time, and a config that cannot be built changes nothing.
const alice = { name: "alice", key: "alice-key-0123456789abcdef" };

let emulator: Emulator;
let channel: ReloadChannel;
let gw: ReloadGateway | undefined;
beforeAll(async () => {
  emulator = await startEmulator({ timing: { deltaMs: 0 } });
  const app = await emulator.createApp();
  channel = { name: "main", baseUrl: emulator.url, app, bot: catalog.bots.echo, models: ["echo"] };
});
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});
afterAll(async () => {
  await emulator?.close();
});

const turns = async (until: () => boolean) => {
  for (let i = 0; !until() && i < 10_000; i++) await new Promise((r) => setImmediate(r));
  if (!until()) throw new Error("never happened");
};

describe("reload", () => {
  it("runs one at a time, and makes one of several asked for while one runs", async () => {
    gw = await startReloadGateway({ keys: [alice], channels: [channel] });
    const path = gw.path;
    const gates: (() => void)[] = [];
    const load = () =>
      new Promise<GatewayConfig>((resolve, reject) => {
        gates.push(() => loadConfig(path, {}).then(resolve, reject));
      });
    const first = gw.gateway.reload(load);
    await turns(() => gates.length === 1);
    const second = gw.gateway.reload(load);
    const third = gw.gateway.reload(load);
    expect(third).toBe(second);
    // The second waits for the first: its file is not read before the first is done.
    await Promise.resolve();
    expect(gates).toHaveLength(1);
    gates[0]?.();
    expect((await first).outcome).toBe("applied");
    await turns(() => gates.length === 2);
    gates[1]?.();
    expect((await second).outcome).toBe("applied");
    expect(gates).toHaveLength(2);
  });

  it("keeps the running config when a channel cannot be built from the new one", async () => {
    gw = await startReloadGateway({ keys: [alice], channels: [channel] });
    const chat = createClient(
      ChatService,
      createGrpcTransport({
        baseUrl: gw.url,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${alice.key}`);
            return next(req);
          },
        ],
      }),
    );
    const hi = {
      model: "echo",
      messages: [create(ChatMessageSchema, { role: Role.USER, content: "hi" })],
    };
    expect((await chat.chat(hi)).answer).toBe("You said: hi");
    // Another private key under the same app and key id: Coze would refuse its JWTs anyway.
    const other = await emulator.createApp();
    const result = await gw.reload({
      keys: [alice],
      channels: [
        {
          ...channel,
          models: ["echo", "new"],
          app: { ...channel.app, privateKeyPem: other.privateKeyPem },
        },
      ],
    });
    expect(result).toMatchObject({
      outcome: "failed",
      errors: [
        "credential.privateKey: differs from the key already in use for this client id and key id",
      ],
    });
    expect((await chat.chat(hi)).answer).toBe("You said: hi");
    await expect(chat.chat({ ...hi, model: "new" })).rejects.toThrow(/unknown model/);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toContain('coze_gateway_config_reloads_total{outcome="failed"} 1');
  });
});
