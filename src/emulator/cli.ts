import { realpathSync } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { generateApp } from "./keys.js";
import { startEmulator } from "./server.js";
import type { Emulator, EmulatorApp } from "./types.js";

/** Parsed command line of `node dist/emulator/cli.js`. */
export interface CliOptions {
  /** `--port N`, default 0 (ephemeral). */
  port: number;
  /** `--host H`, default 127.0.0.1. */
  host: string;
  /** `--apps PATH`: JSON array of `{client_id, public_key_id, public_key}`. */
  appsFile?: string;
  /** `--generate-app PATH`: where to write a generated app, private key included (mode 0600). */
  generateApp?: string;
  /** `--audience A` (repeatable): extra accepted JWT `aud`, e.g. `api.coze.cn`. */
  audiences: string[];
}

/** Usage text printed with argument errors. */
export const USAGE = `usage: coze-emulator [--port N] [--host H] [--apps apps.json] [--generate-app PATH] [--audience AUD]...`;

/** Parses CLI arguments (`--flag value` or `--flag=value`). Throws `Error` with the reason. */
export function parseCliArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = { port: 0, host: "127.0.0.1", audiences: [] };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] as string;
    const eq = arg.indexOf("=");
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const value = () => {
      const v = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (v === undefined || v === "" || (eq === -1 && v.startsWith("--"))) {
        throw new Error(`${flag} needs a value`);
      }
      return v;
    };
    switch (flag) {
      case "--port": {
        const text = value();
        const port = Number(text);
        if (!/^\d+$/.test(text) || port > 65_535)
          throw new Error(`--port must be 0-65535, got ${text}`);
        options.port = port;
        break;
      }
      case "--host":
        options.host = value();
        break;
      case "--apps":
        options.appsFile = value();
        break;
      case "--generate-app":
        options.generateApp = value();
        break;
      case "--audience":
        options.audiences.push(value());
        break;
      default:
        throw new Error(`unknown argument ${arg}`);
    }
  }
  return options;
}

/**
 * Reads an apps file: a JSON array of `{client_id, public_key_id, public_key}` (public key PEM),
 * the shape of the old channel settings. Throws `Error` naming the entry and field at fault.
 */
export function parseAppsFile(text: string, name = "apps file"): EmulatorApp[] {
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch {
    throw new Error(`${name} is not JSON`);
  }
  if (!Array.isArray(list)) throw new Error(`${name} must hold a JSON array`);
  return list.map((entry: unknown, i) => {
    const e = (typeof entry === "object" && entry !== null ? entry : {}) as Record<string, unknown>;
    for (const field of ["client_id", "public_key_id", "public_key"]) {
      if (typeof e[field] !== "string" || e[field] === "") {
        throw new Error(`${name}[${i}].${field} must be a non-empty string`);
      }
    }
    return {
      clientId: e.client_id as string,
      publicKeyId: e.public_key_id as string,
      publicKeyPem: e.public_key as string,
    };
  });
}

/**
 * Starts the emulator from CLI arguments and prints exactly one JSON line
 * `{"url","host","apps":[client ids]}` through `print` once it listens. With `--generate-app`,
 * the generated app (private key included) goes to that file only, created with mode 0600.
 */
export async function runCli(
  argv: readonly string[],
  print: (line: string) => void,
): Promise<Emulator> {
  const options = parseCliArgs(argv);
  const apps = options.appsFile
    ? parseAppsFile(await readFile(options.appsFile, "utf8"), options.appsFile)
    : [];
  const emulator = await startEmulator({
    host: options.host,
    port: options.port,
    apps,
    audiences: options.audiences,
  });
  try {
    if (options.generateApp) {
      const app = await generateApp();
      emulator.addApp(app);
      apps.push(app);
      await writePrivate(options.generateApp, {
        client_id: app.clientId,
        public_key_id: app.publicKeyId,
        private_key: app.privateKeyPem,
        public_key: app.publicKeyPem,
      });
    }
  } catch (error) {
    await emulator.close();
    throw error;
  }
  print(
    JSON.stringify({ url: emulator.url, host: emulator.host, apps: apps.map((a) => a.clientId) }),
  );
  return emulator;
}

async function writePrivate(path: string, value: unknown): Promise<void> {
  const file = await open(path, "w", 0o600);
  try {
    await file.chmod(0o600); // the mode of `open` only applies when it creates the file
    await file.writeFile(`${JSON.stringify(value, null, 2)}\n`);
  } finally {
    await file.close();
  }
}

async function main(): Promise<void> {
  let emulator: Emulator;
  try {
    emulator = await runCli(process.argv.slice(2), (line) => process.stdout.write(`${line}\n`));
  } catch (error) {
    process.stderr.write(
      `coze-emulator: ${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`,
    );
    process.exit(2);
  }
  const stop = () => {
    emulator.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isMain()) void main();
