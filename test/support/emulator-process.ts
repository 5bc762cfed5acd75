import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import type { EmulatorOptions, GeneratedApp } from "../../src/emulator/index.js";

/** An emulator in its own process (from the built `dist/`), as real Coze is: it gets its own CPU. */
export interface EmulatorProcess {
  url: string;
  app: GeneratedApp;
  /** The emulator's counters, read through its admin endpoint. */
  stats(): Promise<{ openStreams: number; calls: Record<string, number>; tokenRequests: number }>;
  close(): Promise<void>;
}

/** Starts `dist/emulator` in a child process with the given options and one generated app. */
export async function startEmulatorProcess(
  options: EmulatorOptions = {},
): Promise<EmulatorProcess> {
  const entry = "dist/emulator/index.js";
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build (npm test does)`);
  const script = `
    const { startEmulator } = await import(${JSON.stringify(`${process.cwd()}/${entry}`)});
    const emulator = await startEmulator(${JSON.stringify(options)});
    const app = await emulator.createApp();
    process.stdout.write(JSON.stringify({ url: emulator.url, app }) + "\\n");
    process.on("SIGTERM", () => emulator.close().then(() => process.exit(0)));
  `;
  const child: ChildProcess = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.once("exit", (code) => reject(new Error(`emulator process exited with ${code}`)));
  });
  const { url, app } = JSON.parse(line) as { url: string; app: GeneratedApp };
  return {
    url,
    app,
    async stats() {
      const res = await fetch(`${url}/__emulator/stats`);
      return (await res.json()) as Awaited<ReturnType<EmulatorProcess["stats"]>>;
    },
    async close() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
