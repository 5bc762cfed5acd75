import type { GatewayConfig } from "../../src/config/index.js";
import { type Demo, startDemo } from "../../src/demo.js";
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
    /** Extra caller keys besides the demo key. */
    apiKeys?: GatewayConfig["apiKeys"];
  } = {},
): Promise<GatewayFixture> {
  const demo = await startDemo({
    port: 0,
    deltaMs: options.deltaMs ?? 0,
    pollIntervalMs: options.pollIntervalMs ?? 10,
  });
  if (options.shutdownGraceMs !== undefined) {
    demo.config.server.shutdownGraceMs = options.shutdownGraceMs;
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
