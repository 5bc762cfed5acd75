import { chmod } from "node:fs/promises";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import {
  aliceKey,
  createTempDir,
  creds,
  generateRsaKey,
  leaks,
  sameKeyAs,
  type TempDir,
  testServerSecret,
  validConfig,
} from "../../test/support/config-fixtures.js";
import { ConfigError } from "./config-error.js";
import { loadConfig } from "./load-config.js";

const key = generateRsaKey();
const posix = process.platform !== "win32";

let tmp: TempDir;
beforeAll(async () => {
  tmp = await createTempDir();
  await tmp.write("conf/keys/coze.pem", key.pkcs8);
});
afterAll(() => tmp.cleanup());

// The config with every secret by reference: nothing secret in the file itself.
function referencedConfig() {
  const raw = validConfig(key);
  creds(raw).private_key = "file:./keys/coze.pem";
  const alice = raw.api_keys[0];
  if (alice !== undefined) alice.key = "env:ALICE_KEY";
  raw.server_secret = "env:SERVER_SECRET";
  return raw;
}

async function loadError(path: string): Promise<ConfigError> {
  const err = await loadConfig(path, {}).then(
    () => expect.fail("accepted"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

describe("loadConfig", () => {
  it("resolves file: references against the config file's directory, not the working one", async () => {
    const path = await tmp.write("conf/gateway.yaml", stringify(referencedConfig()));
    const config = await loadConfig(path, { ALICE_KEY: aliceKey, SERVER_SECRET: testServerSecret });
    expect(config.source).toBe(path);
    expect(config.channels[0]?.credential).toMatchObject({ privateKey: sameKeyAs(key) });
    expect(config.warnings).toEqual([]);
  });

  it("keeps the path as given in messages and source", async () => {
    const path = await tmp.write("conf/relative.yaml", stringify(referencedConfig()));
    const given = relative(process.cwd(), path);
    const config = await loadConfig(given, {
      ALICE_KEY: aliceKey,
      SERVER_SECRET: testServerSecret,
    });
    expect(config.source).toBe(given);
    expect(config.channels[0]?.credential).toMatchObject({ privateKey: sameKeyAs(key) });
  });

  it("reads a .json file as JSON", async () => {
    const path = await tmp.write("conf/gateway.json", JSON.stringify(referencedConfig()));
    const config = await loadConfig(path, { ALICE_KEY: aliceKey, SERVER_SECRET: testServerSecret });
    expect(config.source).toBe(path);
    expect(config.models.map((m) => m.name)).toEqual(["support-bot"]);
  });

  it.runIf(posix)(
    "warns when a file holding secrets is readable by others, naming file and mode",
    async () => {
      const path = await tmp.write("conf/open.yaml", stringify(validConfig(key)), 0o644);
      const config = await loadConfig(path, {});
      expect(config.warnings).toEqual([
        `${path}: holds secrets inline and is readable by group or others (mode 0644); chmod 600 it, or move the secrets to env: or file: references`,
      ]);
      expect(leaks(config.warnings.join("\n"), key.pkcs8)).toBe(false);
      expect(config.warnings.join("\n")).not.toContain(aliceKey);
    },
  );

  it.runIf(posix)("warns for group access alone", async () => {
    const path = await tmp.write("conf/group.yaml", stringify(validConfig(key)), 0o640);
    const config = await loadConfig(path, {});
    expect(config.warnings).toHaveLength(1);
    expect(config.warnings[0]).toContain("(mode 0640)");
  });

  it.runIf(posix)("does not warn for a private file", async () => {
    const path = await tmp.write("conf/private.yaml", stringify(validConfig(key)), 0o600);
    expect((await loadConfig(path, {})).warnings).toEqual([]);
  });

  it.runIf(posix)(
    "does not warn for a readable file whose secrets are all references",
    async () => {
      const path = await tmp.write("conf/shared.yaml", stringify(referencedConfig()), 0o644);
      expect(
        (await loadConfig(path, { ALICE_KEY: aliceKey, SERVER_SECRET: testServerSecret })).warnings,
      ).toEqual([]);
    },
  );

  it.runIf(posix)("counts settings JSON pasted inline as a secret", async () => {
    const raw = referencedConfig();
    const channel = raw.channels[0];
    if (channel !== undefined) {
      channel.credentials = JSON.stringify({ ...creds(raw), private_key: key.pkcs8 });
    }
    const path = await tmp.write("conf/pasted.yaml", stringify(raw), 0o604);
    const config = await loadConfig(path, { ALICE_KEY: aliceKey, SERVER_SECRET: testServerSecret });
    expect(config.warnings[0]).toContain("(mode 0604)");
  });

  it("fails naming the file when it does not exist", async () => {
    const path = join(tmp.dir, "conf/missing.yaml");
    const err = await loadError(path);
    expect(err.message).toBe(`${path}: cannot be read: no such file (ENOENT)`);
    expect(err.file).toBe(path);
    expect(err.field).toBe("");
  });

  it.runIf(posix && process.getuid?.() !== 0)(
    "fails naming the file when it is not readable",
    async () => {
      const path = await tmp.write("conf/locked.yaml", "api_keys: []\n");
      await chmod(path, 0o000);
      const err = await loadError(path);
      expect(err.message).toBe(`${path}: cannot be read: permission denied (EACCES)`);
    },
  );

  it("refuses a file larger than 4 MiB", async () => {
    const path = await tmp.write("conf/huge.yaml", `# ${"x".repeat(4 * 1024 * 1024)}\n`);
    const err = await loadError(path);
    expect(err.message).toBe(`${path}: is larger than 4 MiB`);
  });

  it("fails with the file's own path in field errors", async () => {
    const raw = validConfig(key);
    raw.server = { port: -1 };
    const path = await tmp.write("conf/bad.yaml", stringify(raw));
    const err = await loadError(path);
    expect(err.message).toBe(`${path}: server.port: must be an integer from 0 to 65535`);
  });
});
