/**
 * Demo mode's speech round trip: the commands the banner prints, run as printed with curl, speak
 * a sentence into an mp3 and transcribe it back.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { speechRoundTrip } from "../src/demo.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

const run = promisify(execFile);
let fx: GatewayFixture;
let dir: string;
beforeAll(async () => {
  fx = await startGatewayFixture();
  dir = await mkdtemp(join(tmpdir(), "audio-demo-"));
});
afterAll(async () => {
  await fx?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("demo mode's speech round trip", () => {
  it("speaks into an mp3 and transcribes it back, with the commands as printed", async () => {
    const file = join(dir, "hello.mp3");
    const text = speechRoundTrip(fx.url, fx.key, file);
    const [speak, transcribe] = text
      .replace(/\\\n\s*/g, "")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "");
    expect(speak).toMatch(/^curl -s .*\/v1\/audio\/speech /);
    const spoken = await run("bash", ["-c", speak as string], { timeout: 30_000 });
    expect(spoken.stdout).toBe("audio/mpeg\n");
    expect((await readFile(file)).subarray(0, 3).toString("latin1")).toBe("ID3");
    const heard = await run("bash", ["-c", transcribe as string], { timeout: 30_000 });
    expect(JSON.parse(heard.stdout)).toEqual({ text: "Hello from Coze" });
  });
});
