import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseAppsFile, parseCliArgs, runCli } from "./cli.js";
import { generateApp } from "./keys.js";
import { mintToken } from "./testing.js";

describe("parseCliArgs", () => {
  it("defaults to an ephemeral port on loopback", () => {
    expect(parseCliArgs([])).toEqual({ port: 0, host: "127.0.0.1", audiences: [] });
  });

  it("reads every flag in both --flag value and --flag=value forms", () => {
    expect(
      parseCliArgs([
        "--port",
        "8080",
        "--host=0.0.0.0",
        "--apps",
        "a.json",
        "--generate-app=app.json",
        "--audience",
        "api.coze.cn",
        "--audience=api.coze.com",
      ]),
    ).toEqual({
      port: 8080,
      host: "0.0.0.0",
      appsFile: "a.json",
      generateApp: "app.json",
      audiences: ["api.coze.cn", "api.coze.com"],
    });
  });

  it.each([
    [["--port", "http"], /--port must be/],
    [["--port", "70000"], /--port must be/],
    [["--port"], /--port needs a value/],
    [["--apps", "--port", "1"], /--apps needs a value/],
    [["--verbose"], /unknown argument --verbose/],
  ])("rejects %j", (argv, message) => {
    expect(() => parseCliArgs(argv)).toThrow(message);
  });
});

describe("parseAppsFile", () => {
  it("maps client_id, public_key_id and public_key", () => {
    expect(parseAppsFile('[{"client_id":"1","public_key_id":"k","public_key":"PEM"}]')).toEqual([
      { clientId: "1", publicKeyId: "k", publicKeyPem: "PEM" },
    ]);
  });

  it("names the entry and field at fault", () => {
    expect(() => parseAppsFile('[{"client_id":"1","public_key":"PEM"}]', "apps.json")).toThrow(
      "apps.json[0].public_key_id must be a non-empty string",
    );
    expect(() => parseAppsFile("{}")).toThrow("must hold a JSON array");
    expect(() => parseAppsFile("nope")).toThrow("is not JSON");
  });
});

describe("runCli", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "emulator-cli-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("prints one JSON line, writes the generated app with mode 0600, and the app can buy tokens", async () => {
    const lines: string[] = [];
    const path = join(dir, "app.json");
    const emulator = await runCli(["--generate-app", path], (line) => lines.push(line));
    try {
      expect(lines).toHaveLength(1);
      const printed = JSON.parse(lines[0] as string);
      expect(printed).toEqual({
        url: emulator.url,
        host: emulator.host,
        apps: [expect.stringMatching(/^\d{13}$/)],
      });
      expect(lines[0]).not.toContain("PRIVATE KEY");
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      const saved = JSON.parse(await readFile(path, "utf8"));
      expect(Object.keys(saved).sort()).toEqual([
        "client_id",
        "private_key",
        "public_key",
        "public_key_id",
      ]);
      expect(saved.client_id).toBe(printed.apps[0]);
      const app = {
        clientId: saved.client_id,
        publicKeyId: saved.public_key_id,
        publicKeyPem: saved.public_key,
        privateKeyPem: saved.private_key,
      };
      await expect(mintToken(emulator, app)).resolves.toMatch(/^czs_/);
    } finally {
      await emulator.close();
    }
  });

  it("registers the apps of --apps", async () => {
    const app = await generateApp({ clientId: "7777" });
    const appsPath = join(dir, "apps.json");
    await writeFile(
      appsPath,
      JSON.stringify([
        { client_id: app.clientId, public_key_id: app.publicKeyId, public_key: app.publicKeyPem },
      ]),
    );
    const lines: string[] = [];
    const emulator = await runCli(["--apps", appsPath, "--audience", "api.coze.cn"], (line) =>
      lines.push(line),
    );
    try {
      expect(JSON.parse(lines[0] as string).apps).toEqual(["7777"]);
      await expect(mintToken(emulator, app, { claims: { aud: "api.coze.cn" } })).resolves.toMatch(
        /^czs_/,
      );
    } finally {
      await emulator.close();
    }
  });

  it("refuses an apps file whose key is not an RSA public key", async () => {
    const appsPath = join(dir, "apps.json");
    await writeFile(
      appsPath,
      JSON.stringify([
        {
          client_id: "1",
          public_key_id: "k",
          public_key: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        },
      ]),
    );
    await expect(runCli(["--apps", appsPath], () => {})).rejects.toThrow(/public key/);
  });
});
