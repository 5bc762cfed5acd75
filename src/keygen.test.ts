import { createPrivateKey, createPublicKey } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "./config/index.js";
import { parsePrivateKey } from "./config/private-key.js";
import { createPools } from "./coze/pools.js";
import { createTokenCache } from "./coze/token-cache.js";
import { startEmulator } from "./emulator/index.js";
import { generateKeyFiles, KeygenError, keyFileNames, runKeygen } from "./keygen.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "coze-gateway-keygen-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `keygen ARGS`, capturing what it prints. */
async function keygen(...args: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await runKeygen(args, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
  });
  return { code, stdout, stderr };
}

/** The base64 lines of a PEM body: any of them in an output is a leak. */
function bodyLines(pem: string): string[] {
  return pem.split("\n").filter((l) => l !== "" && !l.startsWith("-----"));
}

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe("keygen", () => {
  it("writes a PKCS#8 private key (0600) that parsePrivateKey accepts and its public key", async () => {
    const out = join(dir, "keys"); // does not exist yet
    const r = await keygen("--out", out);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    const privatePath = join(out, keyFileNames.privateKey);
    const publicPath = join(out, keyFileNames.publicKey);
    const privatePem = await readFile(privatePath, "utf8");
    const publicPem = await readFile(publicPath, "utf8");
    expect(privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(await mode(privatePath)).toBe(0o600);
    expect(await mode(out)).toBe(0o700);

    const key = parsePrivateKey(privatePem);
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    // The public file is the public half of this private key.
    const derived = createPublicKey(key).export({ type: "spki", format: "pem" }).toString();
    expect(derived).toBe(publicPem);
  });

  it("prints the public key and the next steps, never the private key", async () => {
    const r = await keygen("--out", dir);
    const privatePem = await readFile(join(dir, keyFileNames.privateKey), "utf8");
    const publicPem = await readFile(join(dir, keyFileNames.publicKey), "utf8");
    expect(r.stdout).toContain(publicPem.trimEnd());
    expect(r.stdout).toContain("public_key_id");
    expect(r.stdout).toContain(`private_key: file:${join(dir, keyFileNames.privateKey)}`);
    for (const line of bodyLines(privatePem)) {
      expect(r.stdout).not.toContain(line);
      expect(r.stderr).not.toContain(line);
    }
    expect(r.stdout).not.toContain("PRIVATE KEY-----");
  });

  it("refuses to overwrite either file without --force and leaves both untouched", async () => {
    await keygen("--out", dir);
    const privatePath = join(dir, keyFileNames.privateKey);
    const before = await readFile(privatePath, "utf8");
    const again = await keygen("--out", dir);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe("");
    expect(again.stderr).toContain(`${privatePath} and`);
    expect(again.stderr).toContain("--force");
    expect(await readFile(privatePath, "utf8")).toBe(before);

    // A lone public key is in the way too: a new private key would not match it.
    await rm(privatePath);
    const lone = await keygen("--out", dir);
    expect(lone.code).toBe(1);
    expect(lone.stderr).toContain(join(dir, keyFileNames.publicKey));
    await expect(stat(privatePath)).rejects.toThrow();
  });

  it("--force replaces the pair and restores mode 0600 on a widened private key", async () => {
    await keygen("--out", dir);
    const privatePath = join(dir, keyFileNames.privateKey);
    const before = await readFile(privatePath, "utf8");
    await chmod(privatePath, 0o644);
    const r = await keygen("--out", dir, "--force");
    expect(r.code).toBe(0);
    const after = await readFile(privatePath, "utf8");
    expect(after).not.toBe(before);
    expect(await mode(privatePath)).toBe(0o600);
    expect(createPublicKey(createPrivateKey(after)).export({ type: "spki", format: "pem" })).toBe(
      await readFile(join(dir, keyFileNames.publicKey), "utf8"),
    );
  });

  it("--force replaces a symlink instead of writing the key through it", async () => {
    const elsewhere = join(dir, "elsewhere.txt");
    await writeFile(elsewhere, "not a key\n");
    const out = join(dir, "keys");
    await keygen("--out", out);
    await rm(join(out, keyFileNames.privateKey));
    await symlink(elsewhere, join(out, keyFileNames.privateKey));
    expect((await keygen("--out", out)).code).toBe(1);
    expect((await keygen("--out", out, "--force")).code).toBe(0);
    expect(await readFile(elsewhere, "utf8")).toBe("not a key\n");
  });

  it.each([3072, 4096] as const)("--bits %i makes a key of that size", async (bits) => {
    const r = await keygen("--out", dir, "--bits", String(bits));
    expect(r.code).toBe(0);
    const key = parsePrivateKey(await readFile(join(dir, keyFileNames.privateKey), "utf8"));
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(bits);
  });

  it.each([
    [["--bits", "1024"], "--bits must be 2048, 3072 or 4096"],
    [["--bits", "2048.0"], "--bits must be 2048, 3072 or 4096"],
    [["--out"], "--out"],
    [["--out", " "], "--out needs a directory"],
    [["--bogus"], "--bogus"],
    [["extra"], "extra"],
  ])("refuses %j with the usage and exit code 2, writing nothing", async (args, reason) => {
    const r = await keygen(...args, ...(args.includes("--out") ? [] : ["--out", dir]));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(reason);
    expect(r.stderr).toContain("Usage: coze-gateway keygen");
    await expect(stat(join(dir, keyFileNames.privateKey))).rejects.toThrow();
  });

  it("--help prints the usage and writes nothing", async () => {
    const r = await keygen("--help", "--out", dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: coze-gateway keygen [--out DIR] [--bits 2048|3072|4096]");
    await expect(stat(join(dir, keyFileNames.privateKey))).rejects.toThrow();
  });

  it("reports an unwritable directory as write_failed without leaving half a pair", async () => {
    const blocker = join(dir, "file");
    await writeFile(blocker, "");
    const err = await generateKeyFiles({ outDir: join(blocker, "keys") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeygenError);
    expect((err as KeygenError).code).toBe("write_failed");
    expect((err as KeygenError).message).toContain("ENOTDIR");
  });
});

describe("a keygen pair end to end", () => {
  it("buys an access token from the emulator through a config that reads the key file", async () => {
    const files = await generateKeyFiles({ outDir: join(dir, "keys") });
    const emulator = await startEmulator();
    const pools = createPools();
    try {
      const app = {
        clientId: "1127900106117",
        publicKeyId: "kg-fingerprint-1",
        publicKeyPem: files.publicKeyPem,
      };
      emulator.addApp(app);
      // The credentials exactly as keygen's instructions say, in a config file beside the keys.
      const configPath = join(dir, "gateway.yaml");
      await writeFile(
        configPath,
        `server_secret: keygen-test-server-secret-0123456789abcdef
api_keys:
  - name: ops
    key: env:GATEWAY_KEY
channels:
  - name: main
    base_url: ${emulator.url}
    credentials:
      client_id: "${app.clientId}"
      public_key_id: ${app.publicKeyId}
      private_key: file:./keys/${keyFileNames.privateKey}
`,
        { mode: 0o600 },
      );
      const config = await loadConfig(configPath, { GATEWAY_KEY: "ops-key-0123456789abcdef" });
      const credential = config.channels[0]?.credential;
      if (credential === undefined || credential.kind === "pat") throw new Error("no app channel");
      const tokens = createTokenCache({ pools });
      const token = await tokens.source(credential).getToken(AbortSignal.timeout(10_000));
      expect(token).not.toBe("");
      expect(emulator.stats().tokensIssued).toBe(1);

      // The check can fail: another pair's public key under the same id is refused.
      const other = await generateKeyFiles({ outDir: join(dir, "other") });
      emulator.addApp({
        ...app,
        publicKeyId: "kg-fingerprint-2",
        publicKeyPem: other.publicKeyPem,
      });
      const wrong = createTokenCache({ pools });
      await expect(
        wrong
          .source({ ...credential, publicKeyId: "kg-fingerprint-2" })
          .getToken(AbortSignal.timeout(10_000)),
      ).rejects.toThrow(/authentication failed/);
      expect(emulator.stats().tokensIssued).toBe(1);
    } finally {
      await pools.destroy();
      await emulator.close();
    }
  });
});
