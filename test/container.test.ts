import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EmulatorProcess, startEmulatorProcess } from "./support/emulator-process.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gateway-process.js";

// Issue 16 "Operators": the container builds on a supported Node LTS and its health check asks
// the port the gateway listens on. Docker cannot run here: the test reads the file and runs the
// health check's own command against the built gateway started the way the image starts it.

const containerfile = readFileSync("deploy/Containerfile", "utf8");

/** The exec-form argv of the first `INSTRUCTION [...]` line (continuations joined). */
function execForm(instruction: RegExp): string[] {
  const text = containerfile.replace(/\\\n\s*/g, "");
  const line = text.split("\n").find((l) => instruction.test(l)) ?? "";
  const json = line.slice(line.indexOf("["));
  return JSON.parse(json) as string[];
}

/** The value the image's `ENV` sets for `name`. */
function envOf(name: string): string | undefined {
  for (const line of containerfile.split("\n")) {
    if (!line.startsWith("ENV ")) continue;
    const match = new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(line.slice(4));
    if (match) return match[1];
  }
  return undefined;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

describe("the container file", () => {
  it("builds and runs on Node 22 or 24, slim images of a supported LTS", () => {
    const bases = [...containerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(bases.length).toBeGreaterThanOrEqual(2);
    for (const base of bases) expect(base).toMatch(/^node:(22|24)(\.\d+)*-[a-z]+-slim$/);
  });

  it("sets the port the gateway reads and checks health on it", () => {
    expect(envOf("COZE_GATEWAY_PORT")).toMatch(/^\d+$/);
    const expose = /^EXPOSE (\d+)$/m.exec(containerfile)?.[1];
    expect(expose).toBe(envOf("COZE_GATEWAY_PORT"));
    const check = execForm(/^HEALTHCHECK /);
    expect(check.slice(0, 2)).toEqual(["node", "-e"]);
    expect(check[2]).toContain("process.env.COZE_GATEWAY_PORT");
    expect(check[2]).not.toMatch(/:\d{2,5}\//);
    // The variable is the one the config reads (server.port's override).
    expect(readFileSync("src/config/server-section.ts", "utf8")).toContain(
      'envValue(ctx, "COZE_GATEWAY_PORT")',
    );
  });

  describe("its health check command", () => {
    let emulator: EmulatorProcess;
    let gateway: GatewayProcess;
    let port: number;
    beforeAll(async () => {
      emulator = await startEmulatorProcess();
      port = await freePort();
      gateway = await startGatewayProcess({
        emulator,
        callerKey: "sk-container-test-0123456789abcdef",
        env: { COZE_GATEWAY_PORT: String(port) },
      });
    }, 30_000);
    afterAll(async () => {
      await gateway?.close();
      await emulator?.close();
    });

    const run = (env: Record<string, string>) => {
      const [cmd = "", ...args] = execForm(/^HEALTHCHECK /);
      const command = cmd === "node" ? process.execPath : cmd;
      return spawnSync(command, args, { env: { ...process.env, ...env }, timeout: 10_000 }).status;
    };

    it("passes against the gateway on the port COZE_GATEWAY_PORT gives it", async () => {
      expect(gateway.url).toBe(`http://127.0.0.1:${port}`);
      expect(run({ COZE_GATEWAY_PORT: String(port) })).toBe(0);
    });

    it("fails where nothing listens", async () => {
      expect(run({ COZE_GATEWAY_PORT: String(await freePort()) })).toBe(1);
    });
  });
});
