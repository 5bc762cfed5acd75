import { type ChildProcess, execFile, spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { catalog, startEmulator } from "../src/emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";

// These tests run the built program, as `npm start` does; `npm test` builds first.
const main = join("dist", "main.js");
const runFile = promisify(execFile);
const children = new Set<ChildProcess>();
let dir: string;

beforeAll(async () => {
  if (!existsSync(main)) throw new Error(`${main} is missing: run npm run build (npm test does)`);
  dir = await mkdtemp(join(tmpdir(), "coze-gateway-main-"));
});
afterEach(() => {
  for (const child of children) child.kill("SIGKILL");
  children.clear();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Starts demo mode on an ephemeral port and waits for the banner. */
async function startDemoProcess() {
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, COZE_GATEWAY_PORT: "0", COZE_GATEWAY_CONFIG: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let out = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.on("exit", (code) => resolve({ code, at: Date.now() })),
  );
  await expect.poll(() => out, { timeout: 15_000 }).toContain("Stop with Ctrl-C");
  const url = /gateway {2}(\S+)/.exec(out)?.[1] ?? "";
  const key = /API key {2}(\S+)/.exec(out)?.[1] ?? "";
  return { child, url, key, banner: out, exited };
}

/** Runs the program to completion. */
async function runMain(args: string[], env: Record<string, string> = {}) {
  return runFile(process.execPath, [main, ...args], {
    env: { ...process.env, COZE_GATEWAY_CONFIG: "", ...env },
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
}

describe("npm start without a config (demo mode)", () => {
  it("prints the URL, a key and commands, and answers the README's curl request", async () => {
    const { child, url, key, banner, exited } = await startDemoProcess();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(key).toMatch(/^demo-[0-9a-f]{36}$/);
    expect(banner).toContain(`${url}/cozegateway.v1.ChatService/Chat`);
    // The OpenAI base URL, ready to paste into an SDK or a front-end.
    const openAiBase = /OpenAI\s+(\S+)/.exec(banner)?.[1] ?? "";
    expect(openAiBase).toBe(`${url}/v1`);
    const models = await fetch(`${openAiBase}/models`, {
      headers: { Authorization: `Bearer ${key}` },
    });
    expect(models.status).toBe(200);
    // Demo mode lists the emulator's space too: discovered models, with Coze's names.
    const { data } = (await models.json()) as { data: { id: string; name?: string }[] };
    expect(data).toContainEqual(
      expect.objectContaining({ id: "bot:7390000000000000005", name: "Slow talker" }),
    );
    expect(banner).toContain(`discovered in the demo space, with their names: ${url}/v1/models`);
    // The README's curl example, byte for byte in its body.
    const res = await fetch(`${url}/cozegateway.v1.ChatService/Chat`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: '{"model":"coze-echo","messages":[{"role":"ROLE_USER","content":"Hello"}]}',
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { answer: string }).answer).toBe("You said: Hello");
    child.kill("SIGTERM");
    expect((await exited).code).toBe(0);
  });

  it("shuts down on SIGTERM: an open stream ends with Unavailable and the process exits in time", async () => {
    const { child, url, key, exited } = await startDemoProcess();
    const chat = createClient(
      ChatService,
      createGrpcTransport({
        baseUrl: url,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${key}`);
            return next(req);
          },
        ],
      }),
    );
    let err: unknown;
    let signaledAt = 0;
    try {
      for await (const ev of chat.chatStream({
        botId: catalog.bots.slow,
        messages: [create(ChatMessageSchema, { role: Role.USER, content: "a long answer" })],
      })) {
        if (ev.event.case === "delta" && signaledAt === 0) {
          signaledAt = Date.now();
          child.kill("SIGTERM");
        }
      }
    } catch (e) {
      err = e;
    }
    expect(ConnectError.from(err).code).toBe(Code.Unavailable);
    const { code, at } = await exited;
    expect(code).toBe(0);
    // The demo's grace period is 10 s; with no unary call in flight it needs far less.
    expect(at - signaledAt).toBeLessThan(5_000);
  });
});

describe("config validation at start", () => {
  const pem = generateKeyPairSync("rsa", { modulusLength: 2048 })
    .privateKey.export({ type: "pkcs8", format: "pem" })
    .toString();
  const valid = (overrides = "") => `
server:
  port: 0
server_secret: main-test-server-secret-0123456789abcdef
api_keys:
  - name: ops
    key: ops-key-0123456789abcdef
channels:
  - name: cn-main
    base_url: https://api.coze.cn
    credentials:
      client_id: "1127900106117"
      public_key_id: kid-1
      private_key: |
${pem
  .trim()
  .split("\n")
  .map((l) => `        ${l}`)
  .join("\n")}
      default_bot_id: "7390000000000000001"
    models: [support-bot]
${overrides}`;

  async function withConfig(name: string, text: string) {
    const path = join(dir, name);
    await writeFile(path, text, { mode: 0o600 });
    return path;
  }

  it("says in one line that the port is taken, and exits 1", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const path = await withConfig("taken.yaml", valid());
      const r = await runMain(["--config", path], { COZE_GATEWAY_PORT: String(port) });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `cannot listen on 127.0.0.1:${port} (EADDRINUSE); set server.port or COZE_GATEWAY_PORT\n`,
      );
    } finally {
      taken.close();
    }
  });

  it.each(["abc", "70000", "-1", "80 80"])(
    "says in one line that COZE_GATEWAY_PORT=%j is no port, without a config, and exits 1",
    async (value) => {
      const r = await runMain([], { COZE_GATEWAY_PORT: value, COZE_GATEWAY_CONFIG: "" });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `COZE_GATEWAY_PORT must be an integer from 0 to 65535 (0 picks a free port), not ${JSON.stringify(value)}\n`,
      );
    },
  );

  it("--check accepts a valid config and exits 0", async () => {
    const path = await withConfig("ok.yaml", valid());
    const r = await runMain(["--config", path, "--check"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("config OK");
  });

  it.each([
    ["a missing file", "missing.yaml", undefined, "missing.yaml: cannot be read"],
    [
      "a private key that is not PEM",
      "badkey.yaml",
      () =>
        valid().replace(
          /private_key: \|[\s\S]*?(?=\n {6}default_bot_id)/,
          'private_key: "not a key"',
        ),
      "channels[cn-main].credentials.private_key",
    ],
    [
      "a misspelt field",
      "typo.yaml",
      () => valid().replace("base_url:", "baseUrl:"),
      "channels[cn-main].baseUrl",
    ],
    [
      "a duplicate model",
      "dup.yaml",
      () =>
        valid(`  - name: second
    base_url: https://api.coze.com
    credentials: { client_id: "1", public_key_id: k, private_key: "env:NOPE_NOT_SET", default_bot_id: "7" }
    models: [support-bot]`),
      "channels[second]",
    ],
  ])(
    "refuses %s with the file, channel and field, and exits 1",
    async (_kind, name, text, expected) => {
      const path = text ? await withConfig(name, text()) : join(dir, name);
      for (const args of [
        ["--config", path],
        ["--config", path, "--check"],
      ]) {
        const r = await runMain(args);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`config error: ${path}`);
        expect(r.stderr).toContain(expected);
        for (const line of pem.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"))) {
          expect(r.stderr).not.toContain(line);
        }
      }
    },
  );

  it("--check-token fetches one real token per channel, and reports a rejected credential", async () => {
    const emulator = await startEmulator();
    try {
      const app = await emulator.createApp();
      const indent = (pemText: string) =>
        pemText
          .trim()
          .split("\n")
          .map((l) => `        ${l}`)
          .join("\n");
      const config = (key: string) =>
        valid()
          .replace("https://api.coze.cn", emulator.url)
          .replace('client_id: "1127900106117"', `client_id: "${app.clientId}"`)
          .replace("public_key_id: kid-1", `public_key_id: ${app.publicKeyId}`)
          .replace(indent(pem), indent(key));
      const good = await runMain([
        "--config",
        await withConfig("live.yaml", config(app.privateKeyPem)),
        "--check",
        "--check-token",
      ]);
      expect(good.stdout).toContain("token OK: channels[cn-main]");
      expect(good.code).toBe(0);
      expect(emulator.stats().tokensIssued).toBe(1);
      // A key the emulator does not know for this app: Coze answers invalid_client.
      const bad = await runMain([
        "--config",
        await withConfig("wrong.yaml", config(pem)),
        "--check",
        "--check-token",
      ]);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toContain("token FAILED: channels[cn-main]: token: authentication failed");
    } finally {
      await emulator.close();
    }
  });

  it("--check-token skips a personal access token channel: there is no token to fetch", async () => {
    const pat = "pat_main0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV";
    const path = await withConfig(
      "pat.yaml",
      `
server_secret: main-test-server-secret-0123456789abcdef
api_keys:
  - name: ops
    key: ops-key-0123456789abcdef
channels:
  - name: coze-pat
    credentials:
      personal_access_token: env:COZE_PAT
      default_bot_id: "7390000000000000001"
    models: [support-bot]
`,
    );
    const r = await runMain(["--config", path, "--check", "--check-token"], { COZE_PAT: pat });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      "token SKIPPED: channels[coze-pat]: a personal access token is sent as it is; there is no token to fetch",
    );
    expect(`${r.stdout}${r.stderr}`).not.toContain(pat);
  });

  it("refuses unknown flags with the usage and exit code 2", async () => {
    const r = await runMain(["--bogus"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Usage: coze-gateway");
  });
});

describe("keygen", () => {
  it("writes a key pair, prints the public key only, and refuses to overwrite it", async () => {
    const out = join(dir, "keygen");
    const r = await runMain(["keygen", "--out", out]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const publicPem = await readFile(join(out, "coze-app-public.pem"), "utf8");
    const privatePem = await readFile(join(out, "coze-app-private.pem"), "utf8");
    expect(r.stdout).toContain(publicPem.trimEnd());
    expect(r.stdout).toContain(`private_key: file:${join(out, "coze-app-private.pem")}`);
    expect(r.stdout).not.toContain(privatePem.split("\n")[1]);
    const again = await runMain(["keygen", "--out", out]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("--force");
  });

  it("is listed in the usage and has its own --help", async () => {
    expect((await runMain(["--help"])).stdout).toContain("coze-gateway keygen");
    const help = await runMain(["keygen", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: coze-gateway keygen");
  });
});
