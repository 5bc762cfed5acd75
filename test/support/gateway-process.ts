import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { catalog } from "../../src/emulator/index.js";
import type { EmulatorProcess } from "./emulator-process.js";

/** The built gateway (`dist/main.js`) running as its own process with a config file. */
export interface GatewayProcess {
  child: ChildProcess;
  url: string;
  /** The config file it was started with (rewrite it and send SIGHUP to reload). */
  configPath: string;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  exited: Promise<{ code: number | null; at: number }>;
  /** Sends SIGTERM (if still running), waits for the exit, removes the config folder. */
  close(): Promise<void>;
}

/**
 * Writes a config for `emulator` (its app's key as a `file:` reference, one caller key, the
 * demo bot as model `echo`) and starts `node dist/main.js --config` on port 0.
 */
export async function startGatewayProcess(options: {
  emulator: EmulatorProcess;
  callerKey: string;
  /** Extra YAML under `server:`, e.g. `shutdown_grace_ms: 5000`. */
  server?: string;
  env?: Record<string, string>;
  /**
   * The config file's text instead of the one above, made for the folder it is written to
   * (where it may put key files). `callerKey` and `server` are then unused.
   */
  config?: (dir: string) => Promise<string>;
}): Promise<GatewayProcess> {
  const { emulator } = options;
  const dir = await mkdtemp(join(tmpdir(), "coze-gateway-proc-"));
  const keyFile = join(dir, "coze-app.pem");
  await writeFile(keyFile, emulator.app.privateKeyPem, { mode: 0o600 });
  const config = join(dir, "gateway.yaml");
  const text =
    options.config === undefined
      ? undefined
      : await options.config(dir).catch(async (err) => {
          await rm(dir, { recursive: true, force: true });
          throw err;
        });
  await writeFile(
    config,
    text ??
      `server:
  port: 0
${(options.server ?? "").replace(/^/gm, "  ")}
server_secret: gateway-process-test-secret-0123456789abcdef
api_keys:
  - name: test
    key: ${options.callerKey}
channels:
  - name: main
    base_url: ${emulator.url}
    credentials:
      client_id: "${emulator.app.clientId}"
      public_key_id: ${emulator.app.publicKeyId}
      private_key: file:${keyFile}
      default_bot_id: "${catalog.bots.echo}"
    polling: { interval_ms: 100 }
    models: [echo]
`,
    { mode: 0o600 },
  );
  const child = spawn(process.execPath, ["dist/main.js", "--config", config], {
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    output += c.toString();
  });
  const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.once("exit", (code) => resolve({ code, at: Date.now() })),
  );
  const listening = /"url":"(http:[^"]+)"/;
  // Wait (bounded) for the "listening" log line, or fail with what the process printed.
  for (let waited = 0; !listening.test(output); waited += 50) {
    if (waited > 15_000 || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`gateway did not start: ${output.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    url: listening.exec(output)?.[1] ?? "",
    configPath: config,
    output: () => output,
    exited,
    async close() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
