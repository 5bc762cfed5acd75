import { stringify } from "yaml";
import { parseConfig } from "../../src/config/index.js";
import { catalog, type Emulator, startEmulator } from "../../src/emulator/index.js";
import { type Gateway, startGateway } from "../../src/gateway.js";

/** A channel of {@link startConfigGateway}: its name and model list, as a config file has them. */
export interface ConfigGatewayChannel {
  name: string;
  default?: boolean;
  /** `channels[].models` as written in the file: a list, or the old comma-separated text. */
  models?: unknown;
}

/** A caller key of {@link startConfigGateway}. */
export interface ConfigGatewayKey {
  name: string;
  key: string;
  models?: string[];
}

/** A gateway loaded from a config file's text, each channel an OAuth app of one emulator. */
export interface ConfigGateway {
  emulator: Emulator;
  gateway: Gateway;
  url: string;
  close(): Promise<void>;
}

/**
 * Starts the emulator, registers one OAuth app per channel, writes the config as YAML text
 * (credentials inline, `default_bot_id` the echo bot, polling every 100 ms), loads it with
 * `parseConfig` as the program does, and starts the real server on 127.0.0.1 port 0. What
 * reaches the gateway is what a config file's reader made of it.
 */
export async function startConfigGateway(options: {
  channels: ConfigGatewayChannel[];
  apiKeys: ConfigGatewayKey[];
}): Promise<ConfigGateway> {
  const emulator = await startEmulator({ host: "127.0.0.1", port: 0, timing: { deltaMs: 0 } });
  try {
    const channels = [];
    for (const channel of options.channels) {
      const app = await emulator.createApp();
      channels.push({
        ...channel,
        base_url: emulator.url,
        credentials: {
          client_id: app.clientId,
          public_key_id: app.publicKeyId,
          private_key: app.privateKeyPem,
          default_bot_id: catalog.bots.echo,
        },
        polling: { interval_ms: 100 },
      });
    }
    const text = stringify({
      server: { host: "127.0.0.1", port: 0 },
      server_secret: "config-gateway-server-secret-0123456789",
      api_keys: options.apiKeys,
      channels,
    });
    const config = await parseConfig(text, {
      file: "gateway.yaml",
      baseDir: "/nonexistent",
      env: {},
    });
    const gateway = await startGateway({ config });
    return {
      emulator,
      gateway,
      url: gateway.url,
      async close() {
        await gateway.close();
        await emulator.close();
      },
    };
  } catch (err) {
    await emulator.close();
    throw err;
  }
}
