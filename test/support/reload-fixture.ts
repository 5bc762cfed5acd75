import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { loadConfig } from "../../src/config/index.js";
import type { GeneratedApp } from "../../src/emulator/index.js";
import { type Gateway, type ReloadResult, startGateway } from "../../src/gateway.js";
import type { Observability } from "../../src/observability/index.js";

/** A channel of a {@link ReloadFile}: an emulator app behind `baseUrl`, and its models. */
export interface ReloadChannel {
  name: string;
  baseUrl: string;
  app: GeneratedApp;
  /** `default_bot_id`. */
  bot: string;
  models: unknown;
  default?: boolean;
  /** More channel fields, as the file spells them (`sessions`, `timeouts`, ...). */
  more?: Record<string, unknown>;
}

/** What a config file of the reload tests holds. */
export interface ReloadFile {
  /** The `server` section; `port: 0` and loopback by default. */
  server?: Record<string, unknown>;
  serverSecret?: string;
  keys: { name: string; key: string; models?: string[]; limits?: Record<string, unknown> }[];
  channels: ReloadChannel[];
}

/** A gateway started from a config file in a temporary folder, reloaded from it. */
export interface ReloadGateway {
  gateway: Gateway;
  url: string;
  /** The config file's path. */
  path: string;
  /** Writes `file` over the config file (private keys as `file:` references beside it). */
  write(file: ReloadFile): Promise<void>;
  /** Writes `file` when given, then reloads the gateway from the file, as SIGHUP does. */
  reload(file?: ReloadFile): Promise<ReloadResult>;
  close(): Promise<void>;
}

/** The YAML text of `file`, each app's private key in a `file:` reference under `dir`. */
export async function reloadFileText(file: ReloadFile, dir: string): Promise<string> {
  const channels = [];
  for (const c of file.channels) {
    const keyFile = join(dir, `${c.app.clientId}.pem`);
    await writeFile(keyFile, c.app.privateKeyPem, { mode: 0o600 });
    channels.push({
      name: c.name,
      base_url: c.baseUrl,
      ...(c.default === undefined ? {} : { default: c.default }),
      credentials: {
        client_id: c.app.clientId,
        public_key_id: c.app.publicKeyId,
        private_key: `file:${keyFile}`,
        default_bot_id: c.bot,
      },
      polling: { interval_ms: 100 },
      models: c.models,
      ...c.more,
    });
  }
  return stringify({
    server: { host: "127.0.0.1", port: 0, ...file.server },
    server_secret: file.serverSecret ?? "reload-test-server-secret-0123456789abcdef",
    api_keys: file.keys,
    channels,
  });
}

/** Writes `file`, loads it with `loadConfig` as the program does, and starts the gateway. */
export async function startReloadGateway(
  file: ReloadFile,
  options: { observability?: Observability } = {},
): Promise<ReloadGateway> {
  const dir = await mkdtemp(join(tmpdir(), "coze-gateway-reload-"));
  const path = join(dir, "gateway.yaml");
  const write = async (next: ReloadFile) => {
    await writeFile(path, await reloadFileText(next, dir), { mode: 0o600 });
  };
  try {
    await write(file);
    const gateway = await startGateway({
      config: await loadConfig(path, {}),
      observability: options.observability,
    });
    return {
      gateway,
      url: gateway.url,
      path,
      write,
      async reload(next) {
        if (next !== undefined) await write(next);
        return gateway.reload(() => loadConfig(path, {}));
      },
      async close() {
        await gateway.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
