// --compare-main and --fresh: another gateway build side by side with this one, and restarts of
// both between repetitions.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ProxyUnderTest } from "./context.js";
import { type NodeProcess, waitForHttp } from "./proc.js";

/**
 * Writes the config of the compared build `main` into `dir`: the bench's `config` on `port`,
 * without what older builds refuse (`max_streams_per_key` before issue 13, `server_secret` before
 * it existed: asked with `--check`). Returns its path.
 */
export function writeCompareConfig(
  config: string,
  dir: string,
  port: number,
  main: string,
): string {
  const path = join(dir, "gateway-compare.json");
  const parsed = JSON.parse(readFileSync(config, "utf8")) as {
    server: { port: number; max_streams_per_key?: number };
    server_secret?: string;
  };
  parsed.server.port = port;
  // The compared scenarios stay far below the default cap per key.
  delete parsed.server.max_streams_per_key;
  writeFileSync(path, JSON.stringify(parsed), { mode: 0o600 });
  const check = spawnSync(process.execPath, [main, "--config", path, "--check"], {
    encoding: "utf8",
  });
  if (check.status !== 0 && check.stderr.includes("server_secret")) {
    delete parsed.server_secret;
    writeFileSync(path, JSON.stringify(parsed), { mode: 0o600 });
    console.log("compare build predates server_secret: its config goes without it");
  }
  return path;
}

/**
 * Gives `proxy` a restart: its process stops, `start()` starts a new one (on the same port, by
 * its config), kept in `started` to be stopped at the end; ready when `/healthz` answers.
 */
export function restartable(
  proxy: ProxyUnderTest,
  start: () => NodeProcess,
  started: NodeProcess[],
): void {
  proxy.restart = async () => {
    await proxy.process.stop();
    proxy.process = start();
    started.push(proxy.process);
    await waitForHttp(`${proxy.url}/healthz`);
  };
}
