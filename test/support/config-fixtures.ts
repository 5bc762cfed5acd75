// Fixtures of the config tests (and the docs test): keys are generated at run time; nothing
// secret is committed.
import { generateKeyPairSync, KeyObject } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { expect } from "vitest";
import { stringify } from "yaml";
import { ConfigError } from "../../src/config/config-error.js";
import type { ConfigEnv, GatewayConfig } from "../../src/config/gateway-config.js";
import { parseConfig } from "../../src/config/parse-config.js";

/** An RSA key pair for Coze credentials, in the encodings the settings may hold. */
export interface TestKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  pkcs8: string;
  pkcs1: string;
}

/** A fresh 2048-bit RSA key pair. */
export function generateRsaKey(): TestKey {
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    ...pair,
    pkcs8: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    pkcs1: pair.privateKey.export({ type: "pkcs1", format: "pem" }).toString(),
  };
}

/**
 * Matches, inside `toEqual`, a parsed private key equal to `key`'s. Needed because `toEqual` sees
 * no fields on a `KeyObject` and takes any two keys for equal. Typed as the key it stands for.
 */
export function sameKeyAs(key: TestKey): KeyObject {
  const matcher = {
    asymmetricMatch: (actual: unknown) =>
      actual instanceof KeyObject && actual.equals(key.privateKey),
    toString: () => "KeyObject equal to the test key",
  };
  return matcher as unknown as KeyObject;
}

/** The fixtures' `server_secret`: 40 printable characters. */
export const testServerSecret = "test-server-secret-0123456789abcdefghijk";

/** An inline caller key used by the fixtures: 32 characters, printable. */
export const aliceKey = "sk-alice-0123456789abcdefghijklm";

/** A mapping of the file's data model. */
export type RawMap = Record<string, unknown>;

/** A channel of the file's data model. */
export interface RawChannel extends RawMap {
  credentials: RawMap | string;
}

/** The file's data model, loosely typed so tests can break it. */
export interface RawConfig extends RawMap {
  server?: RawMap;
  server_secret?: unknown;
  api_keys: RawMap[];
  channels: RawChannel[];
}

/** The credentials mapping of channel `i`. */
export function creds(config: RawConfig, i = 0): RawMap {
  const channel = config.channels[i];
  if (channel === undefined || typeof channel.credentials === "string") {
    throw new Error(`channel ${i} has no credentials mapping`);
  }
  return channel.credentials;
}

/** A valid config in the file's data model, with the key inline. Mutate a fresh one per test. */
export function validConfig(key: TestKey): RawConfig {
  return {
    server_secret: testServerSecret,
    api_keys: [{ name: "alice", key: aliceKey }],
    channels: [
      {
        name: "cn-main",
        credentials: {
          client_id: "1127900106117",
          public_key_id: "g3bA-kid",
          private_key: key.pkcs8,
          default_bot_id: "7390000000000000001",
        },
        models: ["support-bot"],
      },
    ],
  };
}

/** A temporary directory under `os.tmpdir()`; `cleanup` removes it. */
export interface TempDir {
  dir: string;
  /** Writes `name` (parents created; mode 0600 unless given) and returns its absolute path. */
  write(name: string, content: string, mode?: number): Promise<string>;
  cleanup(): Promise<void>;
}

/** Creates a {@link TempDir}. */
export async function createTempDir(): Promise<TempDir> {
  const dir = await mkdtemp(join(tmpdir(), "coze-gateway-config-"));
  return {
    dir,
    async write(name, content, mode = 0o600) {
      const path = join(dir, name);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content, { mode });
      await chmod(path, mode);
      return path;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Parses `value` as a YAML file named `gateway.yaml` in `baseDir`. */
export function parseObject(
  value: unknown,
  baseDir: string,
  env: ConfigEnv = {},
): Promise<GatewayConfig> {
  return parseConfig(stringify(value), { file: "gateway.yaml", baseDir, env });
}

/** True when `message` holds any 12-character run of `secret`'s text (PEM body or key). */
export function leaks(message: string, secret: string): boolean {
  const body = secret.replace(/-----[A-Z0-9 ]+-----/g, "").replace(/\s+/g, "");
  for (let i = 0; i + 12 <= body.length; i++) {
    if (message.includes(body.slice(i, i + 12))) return true;
  }
  return false;
}

/**
 * What every config error test needs: keys generated once per test file (never committed), an
 * `expectError` that checks the exact message and that it quotes no secret, and `rejects`, which
 * loads the valid config after an edit.
 */
export function configErrorHarness() {
  const key = generateRsaKey();
  const ecPem = generateKeyPairSync("ec", { namedCurve: "P-256" })
    .privateKey.export({ type: "pkcs8", format: "pem" })
    .toString();

  /** Rejects with a ConfigError whose message is exactly `message` and quotes no secret. */
  async function expectError(promise: Promise<unknown>, message: string): Promise<ConfigError> {
    const err = await promise.then(
      () => expect.fail(`accepted; expected: ${message}`),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    const error = err as ConfigError;
    expect(error.message).toBe(message);
    for (const secret of [key.pkcs8, key.pkcs1, ecPem, aliceKey]) {
      expect(leaks(error.message, secret)).toBe(false);
    }
    return error;
  }

  function rejects(edit: (c: RawConfig) => void, env: ConfigEnv = {}): Promise<unknown> {
    const config = validConfig(key);
    edit(config);
    return parseObject(config, "/nonexistent", env);
  }

  return { key, ecPem, expectError, rejects };
}
