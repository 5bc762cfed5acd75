import { randomBytes } from "node:crypto";
import type { GatewayConfig } from "../../src/config/index.js";
import { type Demo, demoConfig, startDemo } from "../../src/demo.js";
import { type EmulatorOptions, startEmulator } from "../../src/emulator/index.js";
import { type Gateway, startGateway } from "../../src/gateway.js";

/** A whole gateway in demo mode on an ephemeral port, in this process. */
export interface GatewayFixture {
  demo: Demo;
  gateway: Gateway;
  url: string;
  key: string;
  close(): Promise<void>;
}

/** Starts the emulator, a demo config on port 0 and the real server. */
export async function startGatewayFixture(
  options: {
    pollIntervalMs?: number;
    /** Emulator pause between stream events, in ms. Default 0. */
    deltaMs?: number;
    shutdownGraceMs?: number;
    /** The largest request message or body, in bytes. Default the demo's (10 MiB). */
    bodyLimitBytes?: number;
    /** Extra caller keys besides the demo key. */
    apiKeys?: GatewayConfig["apiKeys"];
    /** Emulator behaviour beyond the demo's: `chatsOnDisconnect`, other `timing`. */
    emulator?: EmulatorExtras;
  } = {},
): Promise<GatewayFixture> {
  const deltaMs = options.deltaMs ?? 0;
  const pollIntervalMs = options.pollIntervalMs ?? 10;
  const demo =
    options.emulator === undefined
      ? await startDemo({ port: 0, deltaMs, pollIntervalMs })
      : await startDemoWith(options.emulator, deltaMs, pollIntervalMs);
  if (options.shutdownGraceMs !== undefined) {
    demo.config.server.shutdownGraceMs = options.shutdownGraceMs;
  }
  if (options.bodyLimitBytes !== undefined) {
    demo.config.server.bodyLimitBytes = options.bodyLimitBytes;
  }
  demo.config.apiKeys.push(...(options.apiKeys ?? []));
  try {
    const gateway = await startGateway({ config: demo.config });
    return {
      demo,
      gateway,
      url: gateway.url,
      key: demo.apiKey,
      async close() {
        await gateway.close();
        await demo.close();
      },
    };
  } catch (err) {
    await demo.close();
    throw err;
  }
}

/** Emulator options a gateway fixture may set. */
type EmulatorExtras = Pick<EmulatorOptions, "chatsOnDisconnect" | "timing">;

/** What `startDemo` does, with an emulator started with `extras` as well. */
async function startDemoWith(
  extras: EmulatorExtras,
  deltaMs: number,
  pollIntervalMs: number,
): Promise<Demo> {
  const em = await startEmulator({
    host: "127.0.0.1",
    port: 0,
    chatsOnDisconnect: extras.chatsOnDisconnect,
    timing: { deltaMs, ...extras.timing },
  });
  try {
    const app = await em.createApp();
    const apiKey = `demo-${randomBytes(18).toString("hex")}`;
    const config = demoConfig({ port: 0, pollIntervalMs, emulatorUrl: em.url, app, apiKey });
    return { emulator: em, app, config, apiKey, close: () => em.close() };
  } catch (err) {
    await em.close();
    throw err;
  }
}
