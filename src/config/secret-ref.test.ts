import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfSignedCertificate } from "../../test/support/certificates.js";
import {
  aliceKey,
  createTempDir,
  creds,
  generateRsaKey,
  leaks,
  parseObject,
  type RawConfig,
  sameKeyAs,
  type TempDir,
  validConfig,
} from "../../test/support/config-fixtures.js";
import { hashApiKey } from "./api-keys.js";
import { ConfigError } from "./config-error.js";
import type { ConfigEnv } from "./gateway-config.js";

const key = generateRsaKey();
const tlsKey = generateRsaKey();
const cert = selfSignedCertificate(tlsKey);
const settingsJson = JSON.stringify({
  client_id: "1127900106117",
  public_key_id: "g3bA-kid",
  private_key: key.pkcs8,
  default_bot_id: "7390000000000000001",
});

let tmp: TempDir;
beforeAll(async () => {
  tmp = await createTempDir();
  await tmp.write("secrets/alice.key", `${aliceKey}\n`);
  await tmp.write("secrets/coze.pem", key.pkcs8);
  await tmp.write("secrets/settings.json", settingsJson);
  await tmp.write("secrets/broken.json", `${settingsJson.slice(0, -1)},}`);
  await tmp.write("secrets/empty.pem", "\n\n");
  await tmp.write("tls/cert.pem", cert, 0o644);
  await tmp.write("tls/key.pem", tlsKey.pkcs8);
});
afterAll(() => tmp.cleanup());

/** A named pipe nobody writes to, when this system can make one; made at load for skipIf. */
const fifoDir = mkdtempSync(join(tmpdir(), "coze-gateway-fifo-"));
const fifo = ((path: string) => {
  try {
    execFileSync("mkfifo", [path], { stdio: "ignore" });
    return path;
  } catch {
    return undefined;
  }
})(join(fifoDir, "pipe"));
afterAll(() => rmSync(fifoDir, { recursive: true, force: true }));

/** A reference site: where it goes in the config and how to check what it resolved to. */
interface Site {
  name: string;
  field: string;
  set(config: RawConfig, value: string): void;
  file: string;
  envValue: string;
  check(config: Awaited<ReturnType<typeof parseObject>>): void;
}

const sites: Site[] = [
  {
    name: "an API key",
    field: "api_keys[alice].key",
    set: (c, v) => {
      const alice = c.api_keys[0];
      if (alice !== undefined) alice.key = v;
    },
    file: "./secrets/alice.key",
    envValue: aliceKey,
    check: (c) => expect(c.apiKeys[0]?.sha256).toEqual(hashApiKey(aliceKey)),
  },
  {
    name: "a private key",
    field: "channels[cn-main].credentials.private_key",
    set: (c, v) => {
      creds(c).private_key = v;
    },
    file: "secrets/coze.pem",
    envValue: key.pkcs8,
    check: (c) => expect(c.channels[0]?.credential).toMatchObject({ privateKey: sameKeyAs(key) }),
  },
  {
    name: "the whole settings JSON",
    field: "channels[cn-main].credentials",
    set: (c, v) => {
      const channel = c.channels[0];
      if (channel !== undefined) channel.credentials = v;
    },
    file: "./secrets/settings.json",
    envValue: settingsJson,
    check: (c) => {
      expect(c.channels[0]?.credential).toMatchObject({ privateKey: sameKeyAs(key) });
      expect(c.channels[0]?.defaultBotId).toBe("7390000000000000001");
    },
  },
  {
    name: "a TLS certificate",
    field: "server.tls.cert",
    set: (c, v) => {
      c.server = { tls: { cert: v, key: tlsKey.pkcs8 } };
    },
    file: "./tls/cert.pem",
    envValue: cert,
    check: (c) => expect(c.server.tls?.cert).toBe(cert),
  },
  {
    name: "a TLS key",
    field: "server.tls.key",
    set: (c, v) => {
      c.server = { tls: { cert, key: v } };
    },
    file: "./tls/key.pem",
    envValue: tlsKey.pkcs8,
    check: (c) => expect(c.server.tls?.key).toBe(tlsKey.pkcs8),
  },
];

function load(site: Site, value: string, env: ConfigEnv = {}) {
  const config = validConfig(key);
  site.set(config, value);
  return parseObject(config, tmp.dir, env);
}

async function failure(promise: Promise<unknown>): Promise<ConfigError> {
  const err = await promise.then(
    () => expect.fail("accepted"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  const error = err as ConfigError;
  for (const secret of [key.pkcs8, tlsKey.pkcs8, aliceKey]) {
    expect(leaks(error.message, secret)).toBe(false);
  }
  return error;
}

describe.each(sites)("$name by reference", (site) => {
  it("reads env:NAME", async () => {
    site.check(await load(site, "env:GW_SECRET", { GW_SECRET: site.envValue }));
  });

  it("fails naming the field and the variable when it is not set", async () => {
    const err = await failure(load(site, "env:GW_SECRET", { OTHER: "x" }));
    expect(err.message).toBe(
      `gateway.yaml: ${site.field}: environment variable GW_SECRET is not set (env:GW_SECRET)`,
    );
  });

  it("fails naming the field and the variable when it is empty", async () => {
    const err = await failure(load(site, "env:GW_SECRET", { GW_SECRET: " \n" }));
    expect(err.message).toBe(
      `gateway.yaml: ${site.field}: environment variable GW_SECRET is empty (env:GW_SECRET)`,
    );
  });

  it("reads file:PATH relative to the config file's directory", async () => {
    site.check(await load(site, `file:${site.file}`));
  });

  it("reads file:PATH given as an absolute path", async () => {
    site.check(await load(site, `file:${join(tmp.dir, site.file)}`));
  });

  it("fails naming the field and the path when the file is missing", async () => {
    const err = await failure(load(site, "file:./missing/secret.pem"));
    expect(err.message).toBe(
      `gateway.yaml: ${site.field}: cannot read ./missing/secret.pem (${join(tmp.dir, "missing/secret.pem")}): no such file (ENOENT)`,
    );
    expect((err.cause as { code?: string }).code).toBe("ENOENT");
  });
});

describe("reference errors", () => {
  const apiKey = sites[0] as Site;
  const credentials = sites[2] as Site;

  it("refuses env: without a variable name", async () => {
    const err = await failure(load(apiKey, "env:"));
    expect(err.message).toBe(
      "gateway.yaml: api_keys[alice].key: env: must be followed by a variable name, e.g. env:COZE_PRIVATE_KEY",
    );
  });

  it("reads only the variables themselves, not Object.prototype", async () => {
    const err = await failure(load(apiKey, "env:toString", {}));
    expect(err.message).toBe(
      "gateway.yaml: api_keys[alice].key: environment variable toString is not set (env:toString)",
    );
  });

  it("refuses file: without a path", async () => {
    const err = await failure(load(apiKey, "file:"));
    expect(err.message).toBe(
      "gateway.yaml: api_keys[alice].key: file: must be followed by a path, e.g. file:./key.pem",
    );
  });

  it("refuses an empty file", async () => {
    const err = await failure(load(apiKey, "file:secrets/empty.pem"));
    expect(err.message).toBe(
      `gateway.yaml: api_keys[alice].key: file secrets/empty.pem (${join(tmp.dir, "secrets/empty.pem")}) is empty`,
    );
  });

  it("refuses a directory", async () => {
    const err = await failure(load(apiKey, `file:${tmp.dir}`));
    expect(err.message).toBe(
      `gateway.yaml: api_keys[alice].key: cannot read ${tmp.dir}: is a directory, not a regular file`,
    );
  });

  it.skipIf(fifo === undefined)(
    "refuses a FIFO at once instead of waiting for a writer for ever",
    { timeout: 5_000 },
    async () => {
      const err = await failure(load(apiKey, `file:${fifo}`));
      expect(err.message).toBe(
        `gateway.yaml: api_keys[alice].key: cannot read ${fifo}: is a FIFO (named pipe), not a regular file`,
      );
      expect(err.channel).toBeUndefined();
      const inChannel = await failure(load(sites[1] as Site, `file:${fifo}`));
      expect(inChannel.message).toMatch(
        /^gateway\.yaml: channels\[cn-main\]\.credentials\.private_key: cannot read .*: is a FIFO/,
      );
      expect(inChannel.channel).toBe("cn-main");
    },
  );

  it("says which reference held settings JSON that does not parse, and where", async () => {
    const err = await failure(load(credentials, "file:./secrets/broken.json"));
    expect(err.message).toBe(
      `gateway.yaml: channels[cn-main].credentials: file:./secrets/broken.json does not hold valid settings JSON (error at line 1, column ${settingsJson.length + 1}); expected the channel settings (client_id, public_key_id, private_key, space_id, default_bot_id; or personal_access_token instead of the OAuth app) as a mapping, as their JSON text, env:NAME or file:PATH`,
    );
  });

  it("names the variable a too-short API key came from", async () => {
    const err = await failure(load(apiKey, "env:ALICE_KEY", { ALICE_KEY: "short-key" }));
    expect(err.message).toBe(
      "gateway.yaml: api_keys[alice].key: is too short: use at least 16 characters (from env:ALICE_KEY)",
    );
  });

  it("names the file a bad private key came from", async () => {
    const site = sites[1] as Site;
    const err = await failure(load(site, "file:./tls/cert.pem"));
    expect(err.message).toBe(
      "gateway.yaml: channels[cn-main].credentials.private_key: PEM holds a certificate, not a private key (from file:./tls/cert.pem)",
    );
  });

  it("names the file a bad TLS key came from", async () => {
    const site = sites[4] as Site;
    const err = await failure(load(site, "file:./secrets/alice.key"));
    expect(err.message).toBe(
      "gateway.yaml: server.tls.key: is not a PEM private key: expected a -----BEGIN PRIVATE KEY----- block (from file:./secrets/alice.key)",
    );
  });
});

describe("secret files readable by group or others", () => {
  it.skipIf(process.platform === "win32")(
    "get the warning a config with inline secrets gets, naming the file, the field and the mode",
    async () => {
      const apiKeyFile = await tmp.write("open/alice.key", `${aliceKey}\n`, 0o644);
      const pemFile = await tmp.write("open/coze.pem", key.pkcs8, 0o640);
      const config = validConfig(key);
      (sites[0] as Site).set(config, "file:./open/alice.key");
      (sites[1] as Site).set(config, "file:./open/coze.pem");
      const loaded = await parseObject(config, tmp.dir);
      expect(loaded.warnings).toContain(
        `${apiKeyFile}: holds a secret (api_keys[alice].key) and is readable by group or others (mode 0644); chmod 600 it`,
      );
      expect(loaded.warnings).toContain(
        `${pemFile}: holds a secret (channels[cn-main].credentials.private_key) and is readable by group or others (mode 0640); chmod 600 it`,
      );
    },
  );

  it("warn of no file that is private, nor of a certificate, which is no secret", async () => {
    const config = validConfig(key);
    (sites[0] as Site).set(config, "file:./secrets/alice.key");
    config.server = { tls: { cert: "file:./tls/cert.pem", key: "file:./tls/key.pem" } };
    const loaded = await parseObject(config, tmp.dir);
    expect(loaded.warnings.filter((w) => w.includes("readable by group"))).toEqual([]);
  });
});
