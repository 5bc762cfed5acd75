import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { catalog } from "../src/emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { type EmulatorProcess, startEmulatorProcess } from "./support/emulator-process.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gateway-process.js";
import { type ReloadFile, reloadFileText } from "./support/reload-fixture.js";

// Issue 15, on the built program: `kill -HUP` reloads the config file while calls run.
const alice = { name: "alice", key: "alice-key-0123456789abcdef" };
const carol = { name: "carol", key: "carol-key-0123456789abcdef" };

let emulator: EmulatorProcess;
let gateway: GatewayProcess | undefined;
beforeAll(async () => {
  emulator = await startEmulatorProcess({ timing: { deltaMs: 0 } });
});
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});
afterAll(async () => {
  await emulator?.close();
});

function file(edit: Partial<ReloadFile> = {}): ReloadFile {
  const channel = {
    name: "main",
    baseUrl: emulator.url,
    app: emulator.app,
    bot: catalog.bots.echo,
    models: ["echo"],
  };
  return { keys: [alice], channels: [channel], ...edit };
}

async function start(first: ReloadFile): Promise<GatewayProcess> {
  gateway = await startGatewayProcess({
    emulator,
    callerKey: "",
    config: (dir) => reloadFileText(first, dir),
  });
  return gateway;
}

/** Rewrites the config file, sends SIGHUP and waits (bounded) for the `n`th reload line. */
async function reload(gw: GatewayProcess, next: ReloadFile | string, n: number) {
  const text = typeof next === "string" ? next : await reloadFileText(next, dirname(gw.configPath));
  await writeFile(gw.configPath, text, { mode: 0o600 });
  gw.child.kill("SIGHUP");
  const lines = () => reloadLines(gw);
  for (let waited = 0; lines().length < n; waited += 20) {
    if (waited > 10_000) throw new Error(`no reload line: ${gw.output().slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return lines()[n - 1] as Record<string, unknown>;
}

function logLines(gw: GatewayProcess): Record<string, unknown>[] {
  return gw
    .output()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const reloadLines = (gw: GatewayProcess) => logLines(gw).filter((l) => l.msg === "config reload");

const user = (content: string) => create(ChatMessageSchema, { role: Role.USER, content });

function chatClient(url: string, key: string) {
  return createClient(
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
}

async function rest(url: string, key: string, text: string, stream: boolean): Promise<string> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "echo", stream, messages: [{ role: "user", content: text }] }),
  });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`REST ${res.status}: ${body}`);
  if (!stream)
    return (
      (JSON.parse(body) as { choices: { message: { content: string } }[] }).choices[0]?.message
        .content ?? ""
    );
  expect(body.trimEnd().endsWith("data: [DONE]")).toBe(true);
  return body
    .split("\n")
    .filter((l) => l.startsWith("data: {"))
    .map((l) => JSON.parse(l.slice(6)).choices[0]?.delta.content ?? "")
    .join("");
}

describe("SIGHUP", () => {
  it("reloads three times under REST and gRPC load without failing a call", async () => {
    const gw = await start(file());
    const chat = chatClient(gw.url, alice.key);
    const kinds = ["rest", "rest-stream", "grpc", "grpc-stream"] as const;
    const total = 160;
    const reloadsAt = [25, 65, 105];
    const reached = reloadsAt.map(() => {
      let resolve = () => {};
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      return { promise, resolve };
    });
    const doneAtReload: number[] = [];
    let started = 0;
    let ok = 0;
    const failures: string[] = [];
    const call = async (i: number) => {
      const text = `call ${i}`;
      const kind = kinds[i % kinds.length];
      let answer = "";
      if (kind === "rest" || kind === "rest-stream") {
        answer = await rest(gw.url, alice.key, text, kind === "rest-stream");
      } else if (kind === "grpc") {
        answer = (await chat.chat({ model: "echo", messages: [user(text)] })).answer;
      } else {
        for await (const ev of chat.chatStream({ model: "echo", messages: [user(text)] })) {
          if (ev.event.case === "delta") answer += ev.event.value.text;
        }
      }
      if (answer !== `You said: ${text}`) throw new Error(`${kind}: ${answer}`);
    };
    // Four callers, each taking the next call number until all are made and the last reload is
    // done (so every reload lands under load however slow the machine), at most ten times over:
    // a bounded loop.
    let reloadsDone = false;
    const worker = async () => {
      while ((started < total || !reloadsDone) && started < total * 10) {
        const i = started++;
        await call(i).then(
          () => ok++,
          (err: unknown) => failures.push(String(err)),
        );
        reloadsAt.forEach((at, r) => {
          if (ok + failures.length === at) reached[r]?.resolve();
        });
      }
    };
    const reloads = (async () => {
      const edits: ReloadFile[] = [
        file({ keys: [alice, carol] }),
        file({
          keys: [alice, carol],
          channels: [
            { ...file().channels[0], models: ["echo", "echo-2"] } as ReloadFile["channels"][0],
          ],
        }),
        file({ keys: [alice] }),
      ];
      for (const [r, edit] of edits.entries()) {
        await reached[r]?.promise;
        expect(await reload(gw, edit, r + 1)).toMatchObject({
          outcome: "applied",
          needsRestart: 0,
        });
        doneAtReload.push(ok + failures.length);
        if (r === edits.length - 1) reloadsDone = true;
        const carolChat = chatClient(gw.url, carol.key).chat({
          model: "echo",
          messages: [user("c")],
        });
        if (r < 2) expect((await carolChat).answer).toBe("You said: c");
        else await expect(carolChat).rejects.toMatchObject({ code: Code.Unauthenticated });
      }
    })();
    await Promise.all([worker(), worker(), worker(), worker(), reloads]);
    expect(failures).toEqual([]);
    expect(ok).toBe(started);
    expect(ok).toBeGreaterThanOrEqual(total);
    // Each reload applied while calls were still to come.
    expect(doneAtReload).toHaveLength(3);
    for (const done of doneAtReload) expect(done).toBeLessThan(started);
    expect(reloadLines(gw).map((l) => l.outcome)).toEqual(["applied", "applied", "applied"]);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toContain('coze_gateway_config_reloads_total{outcome="applied"} 3');
  });

  it("keeps the running config for an invalid file, logging each problem and no secret; --check prints them too", async () => {
    const gw = await start(file());
    const secret = "short-secret-x";
    const bad = file({
      server: { port: 70000 },
      serverSecret: secret,
      keys: [alice, { name: "carol", key: "sk-tiny" }],
    });
    const line = await reload(gw, bad, 1);
    expect(line).toMatchObject({ outcome: "invalid", errors: 3, kept: "running" });
    expect(line.sha256).toMatch(/^[0-9a-f]{12}$/);
    const problems = logLines(gw)
      .filter((l) => l.msg === "config reload: invalid config")
      .map((l) => l.error);
    expect(problems).toEqual([
      `${gw.configPath}: server.port: must be an integer from 0 to 65535`,
      expect.stringMatching(/: server_secret: /),
      expect.stringMatching(/: api_keys\[carol\]\.key: /),
    ]);
    for (const leak of [secret, "sk-tiny", alice.key]) expect(gw.output()).not.toContain(leak);
    // Still serving on the running config.
    const chat = chatClient(gw.url, alice.key);
    expect((await chat.chat({ model: "echo", messages: [user("hi")] })).answer).toBe(
      "You said: hi",
    );

    // The same file through --check: every problem, exit status 1.
    const checked = await promisify(execFile)(process.execPath, [
      "dist/main.js",
      "--config",
      gw.configPath,
      "--check",
    ]).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(checked.code).toBe(1);
    expect(checked.stderr.trim().split("\n")).toEqual(problems.map((p) => `config error: ${p}`));
    expect(checked.stderr).not.toContain(secret);
  });

  it("says a port change needs a restart and applies the rest", async () => {
    const gw = await start(file());
    const line = await reload(gw, file({ server: { port: 1 }, keys: [alice, carol] }), 1);
    expect(line).toMatchObject({ outcome: "applied", needsRestart: 1 });
    const warnings = logLines(gw).filter((l) => l.msg === "config reload: needs a restart");
    expect(warnings.map((l) => [l.level, l.setting])).toEqual([
      ["warn", `${gw.configPath}: server.port: changed (running 0, file 1); needs a restart`],
    ]);
    const chat = chatClient(gw.url, carol.key);
    expect((await chat.chat({ model: "echo", messages: [user("hi")] })).answer).toBe(
      "You said: hi",
    );
  });
});
