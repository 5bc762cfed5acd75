import { randomBytes } from "node:crypto";
import type { ChannelConfig, GatewayConfig, ModelRoute } from "./config/index.js";
import { hashApiKey, parsePrivateKey, serverDefaults } from "./config/index.js";
import { catalog, type Emulator, type GeneratedApp, startEmulator } from "./emulator/index.js";

/** Demo mode: the embedded emulator and a gateway config wired to it. */
export interface Demo {
  emulator: Emulator;
  app: GeneratedApp;
  config: GatewayConfig;
  /** The demo caller key (printed at start; only its hash is in `config`). */
  apiKey: string;
  close(): Promise<void>;
}

/** Options for {@link startDemo}. */
export interface DemoOptions {
  /** Gateway listen address. Default 127.0.0.1:8080. */
  host?: string;
  port?: number;
  /** Demo API key; a random one by default. */
  apiKey?: string;
  /** Emulator stream pacing in ms, so streaming is visible in a terminal. Default 40. */
  deltaMs?: number;
  /** Async polling interval of the demo channel. Default 2 000 (the old channel's). */
  pollIntervalMs?: number;
  /**
   * List the emulator's space as models (discovery, `bot:{id}`, `workflow:{id}` and
   * `chatflow:{id}` names with Coze's names and descriptions). Default true.
   */
  discovery?: boolean;
}

/** The demo's model names, for the README and the start banner. */
export const demoModels = {
  bot: "coze-echo",
  reasoning: "coze-reasoning",
  tool: "coze-tool",
  workflow: `workflow:${catalog.workflows.echo}`,
  workflowAsync: `workflow-async:${catalog.workflows.slowAsync}`,
  interrupt: `workflow:${catalog.workflows.interrupt}`,
  chatflow: `chatflow:${catalog.workflows.chatflow}`,
} as const;

/**
 * The speech round trip demo mode prints: two curl commands, one that speaks a sentence with a
 * demo voice into `file` (an mp3) and prints its Content-Type, one that transcribes that file
 * back and prints `{"text":…}` (the emulator's speech carries its text).
 */
export function speechRoundTrip(
  url: string,
  key: string,
  file = "/tmp/coze-gateway-hello.mp3",
): string {
  const speech = JSON.stringify({ model: "tts-1", voice: "alloy", input: "Hello from Coze" });
  return `  curl -s ${url}/v1/audio/speech -o ${file} -w '%{content_type}\\n' \\
    -H "Authorization: Bearer ${key}" -H "Content-Type: application/json" \\
    -d '${speech}'
  curl -s ${url}/v1/audio/transcriptions -H "Authorization: Bearer ${key}" \\
    -F model=whisper-1 -F file=@${file}
`;
}

/**
 * Starts the embedded Coze emulator on loopback with a freshly generated OAuth app and returns
 * a gateway config for it: one channel whose default bot is the echo bot, named routes for the
 * demo bots, discovery of the emulator's space, and a demo API key. Everything stays on
 * 127.0.0.1.
 */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const emulator = await startEmulator({
    host: "127.0.0.1",
    port: 0,
    timing: { deltaMs: options.deltaMs ?? 40 },
  });
  try {
    const app = await emulator.createApp();
    const apiKey = options.apiKey ?? `demo-${randomBytes(18).toString("hex")}`;
    const config = demoConfig({ ...options, emulatorUrl: emulator.url, app, apiKey });
    return { emulator, app, config, apiKey, close: () => emulator.close() };
  } catch (err) {
    await emulator.close();
    throw err;
  }
}

/**
 * The demo gateway config for an emulator at `emulatorUrl` with a registered `app`: one channel
 * whose default bot is the echo bot, named routes for the demo bots, discovery of the
 * emulator's space (unless `discovery: false`: its other bots, workflows and chatflow listed as
 * `bot:{id}`, `workflow:{id}` and `chatflow:{id}`; the demo bots lend their routes Coze's names
 * and descriptions), and one caller key.
 */
export function demoConfig(
  options: Omit<DemoOptions, "deltaMs"> & {
    emulatorUrl: string;
    app: GeneratedApp;
    apiKey: string;
  },
): GatewayConfig {
  const channel: ChannelConfig = {
    name: "demo",
    baseUrl: options.emulatorUrl,
    credential: {
      baseUrl: options.emulatorUrl,
      clientId: options.app.clientId,
      publicKeyId: options.app.publicKeyId,
      privateKey: parsePrivateKey(options.app.privateKeyPem),
      durationSeconds: 3600,
    },
    spaceId: catalog.space,
    defaultBotId: catalog.bots.echo,
    isDefault: true,
    refreshMarginMs: 300_000,
    polling: {
      intervalMs: options.pollIntervalMs ?? 2_000,
      maxPolls: 150,
      deadlineMs: undefined,
    },
    timeouts: {
      connectMs: 5_000,
      headersMs: 30_000,
      streamIdleMs: 60_000,
      requestMs: 60_000,
      syncRunMs: 100_000,
    },
    discovery: {
      enabled: options.discovery ?? true,
      naming: "id",
      intervalMs: 300_000,
      startWaitMs: 5_000,
      kinds: ["bot", "workflow", "chatflow"],
      maxModels: 500,
    },
  };
  const route = (name: string, kind: ModelRoute["kind"], targetId: string): ModelRoute => ({
    name,
    channel: "demo",
    kind,
    targetId,
    inputField: "input",
    weight: 1,
  });
  const config: GatewayConfig = {
    source: "demo",
    server: {
      host: options.host ?? "127.0.0.1",
      port: options.port ?? 8080,
      tls: undefined,
      corsOrigins: ["*"],
      bodyLimitBytes: 10 * 1024 * 1024,
      shutdownGraceMs: 10_000,
      // Demo mode is for trying things out: the page at /playground is part of that.
      playground: true,
      idleTimeoutMs: serverDefaults.idleTimeoutMs,
      headersTimeoutMs: serverDefaults.headersTimeoutMs,
      requestTimeoutMs: serverDefaults.requestTimeoutMs,
      maxConcurrentStreams: serverDefaults.maxConcurrentStreams,
      maxStreamsPerKey: serverDefaults.maxStreamsPerKey,
      metrics: { listen: undefined, keySha256: undefined },
      trustedProxies: [],
    },
    // Generated per start: demo ids live as long as the process, like the emulator's objects.
    serverSecret: randomBytes(32),
    apiKeys: [
      { name: "demo", sha256: hashApiKey(options.apiKey), models: undefined, rawCozeIds: false },
    ],
    channels: [channel],
    models: [
      route(demoModels.bot, "bot", catalog.bots.echo),
      route(demoModels.reasoning, "bot", catalog.bots.reasoning),
      route(demoModels.tool, "bot", catalog.bots.tool),
    ],
    warnings: [],
  };
  return config;
}
