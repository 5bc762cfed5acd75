import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as connectTls } from "node:tls";
import { create } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Client } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { catalog, type Emulator, startEmulator } from "../src/emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { createTestCertificate } from "./support/certificates.js";
import {
  type ReloadChannel,
  type ReloadFile,
  startReloadGateway,
} from "./support/reload-fixture.js";
import { startTcpTap, type TcpTap } from "./support/tcp-tap.js";

// Issue 15: what a reload keeps and what it lets go. Unchanged channels keep their cached tokens
// (no token request on reload), a removed channel's pooled connections close once its last call
// has ended, renewed TLS files serve new connections.
const alice = { name: "alice", key: "alice-key-0123456789abcdef" };
const carol = { name: "carol", key: "carol-key-0123456789abcdef" };

let emulator: Emulator;
const open: { close(): Promise<void> }[] = [];
beforeAll(async () => {
  emulator = await startEmulator({ timing: { deltaMs: 0, slowDeltaMs: 40 } });
});
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});
afterAll(async () => {
  await emulator?.close();
});

async function start(file: ReloadFile) {
  const gw = await startReloadGateway(file);
  open.push(gw);
  return gw;
}

async function tapOf(url: string): Promise<TcpTap> {
  const t = await startTcpTap(url);
  open.push(t);
  return t;
}

const auth =
  (key: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };

const user = (content: string) => create(ChatMessageSchema, { role: Role.USER, content });

function chatClient(url: string, key: string) {
  return createClient(
    ChatService,
    createGrpcTransport({ baseUrl: url, interceptors: [auth(key)] }),
  );
}

async function channelOf(name: string, models: unknown, more?: ReloadChannel["more"]) {
  const app = await emulator.createApp();
  return { name, baseUrl: emulator.url, app, bot: catalog.bots.echo, models, more };
}

describe("token caches", () => {
  it("fetch no token on reload for a channel whose credentials did not change", async () => {
    const main = await channelOf("main", ["echo"], { default: true });
    const users = await channelOf("users", ["per-user-echo"], { sessions: { per_user: true } });
    const gw = await start({ keys: [alice], channels: [main, users] });
    const chat = chatClient(gw.url, alice.key);
    const calls = async () => {
      await chat.chat({ model: "echo", messages: [user("hi")] });
      for (const userId of ["u1", "u2", "u3"]) {
        await chat.chat({ model: "per-user-echo", userId, messages: [user("hi")] });
      }
    };
    await calls();
    const tokens = emulator.stats().tokenRequests;
    // alice's session on main, and one session per end user on users.
    expect(tokens).toBeGreaterThanOrEqual(4);

    // New keys and routes: both channels are kept as they are.
    const routes = { ...main, models: ["echo", "echo-2"] };
    let result = await gw.reload({ keys: [alice, carol], channels: [routes, users] });
    expect(result.outcome).toBe("applied");
    await calls();
    expect(emulator.stats().tokenRequests).toBe(tokens);

    // A channel rebuilt for its timeouts: same credentials, so the same cached tokens.
    const slower = { ...routes, more: { ...routes.more, timeouts: { request_ms: 90_000 } } };
    result = await gw.reload({ keys: [alice, carol], channels: [slower, users] });
    expect(result.outcome).toBe("applied");
    await calls();
    expect(emulator.stats().tokenRequests).toBe(tokens);

    // Another token lifetime is another credential: its first call buys one token.
    const longer = { ...slower, more: { ...slower.more, token: { duration_seconds: 7200 } } };
    await gw.reload({ keys: [alice, carol], channels: [longer, users] });
    await calls();
    expect(emulator.stats().tokenRequests).toBe(tokens + 1);
  });
});

describe("connection pools", () => {
  it("closes a removed channel's connections once its last call has ended, and keeps the others'", async () => {
    const mainTap = await tapOf(emulator.url);
    const extraTap = await tapOf(emulator.url);
    const main = {
      ...(await channelOf("main", ["echo"], { default: true })),
      baseUrl: mainTap.url,
    };
    const asyncModel = `workflow-async:${catalog.workflows.slowAsync}`;
    const extra = { ...(await channelOf("extra", [asyncModel])), baseUrl: extraTap.url };
    const gw = await start({ keys: [alice], channels: [main, extra] });
    const chat = chatClient(gw.url, alice.key);
    expect((await chat.chat({ model: "echo", messages: [user("hi")] })).answer).toBe(
      "You said: hi",
    );
    const mainConnections = mainTap.accepted;

    // An async run watched through the extra channel: a poll every 100 ms until the 6th read.
    const workflows = createClient(
      WorkflowService,
      createGrpcTransport({ baseUrl: gw.url, interceptors: [auth(alice.key)] }),
    );
    const watch = workflows
      .watchWorkflow({ model: asyncModel, parameters: { input: "y", polls: 6 } })
      [Symbol.asyncIterator]();
    const events: string[] = [];
    while (!events.includes("progress")) {
      const { value } = await watch.next();
      if (value?.event.case) events.push(value.event.case);
    }
    expect((await gw.reload({ keys: [alice], channels: [main] })).outcome).toBe("applied");
    // The watch in flight goes on polling over the removed channel's connection to its end.
    expect(extraTap.open).toBeGreaterThan(0);
    let output = "";
    for (;;) {
      const { value, done } = await watch.next();
      if (done) break;
      if (value.event.case === "result") output = value.event.value.outputJson;
    }
    expect(JSON.parse(output)).toMatchObject({ output: "y" });
    // Sooner than the emulator would close an idle keep-alive connection (5 s).
    await extraTap.idle(2000);
    // The kept channel goes on over the connection it had.
    expect((await chat.chat({ model: "echo", messages: [user("again")] })).answer).toBe(
      "You said: again",
    );
    expect(mainTap.accepted).toBe(mainConnections);
    expect(mainTap.open).toBeGreaterThan(0);
  });
});

describe("TLS", () => {
  it("serves new connections with renewed certificate files, and old connections go on", async () => {
    const dir = await mkdtemp(join(tmpdir(), "coze-gateway-tls-"));
    open.push({ close: () => rm(dir, { recursive: true, force: true }) });
    const [first, second] = [createTestCertificate(), createTestCertificate()];
    const files = async (c: { cert: string; key: string }, name: string) => {
      await writeFile(join(dir, `${name}.crt`), c.cert);
      await writeFile(join(dir, `${name}.key`), c.key, { mode: 0o600 });
      return { cert: `file:${join(dir, `${name}.crt`)}`, key: `file:${join(dir, `${name}.key`)}` };
    };
    const main = await channelOf("main", ["echo"]);
    const gw = await start({
      server: { tls: await files(first, "first") },
      keys: [alice],
      channels: [main],
    });
    const port = Number(new URL(gw.url).port);
    const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
    const served = (ca: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connectTls({ port, host: "127.0.0.1", servername: "localhost", ca }, () => {
          resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? "");
          socket.end();
        });
        socket.once("error", reject);
      });
    expect(await served(first.cert)).toBe(fingerprint(first.cert));
    // A keep-alive connection opened before the reload.
    const before = new Client(gw.url, { connect: { ca: first.cert, servername: "localhost" } });
    open.push(before);
    const health = async () => {
      const res = await before.request({ path: "/healthz", method: "GET" });
      await res.body.text();
      return res.statusCode;
    };
    expect(await health()).toBe(200);

    const result = await gw.reload({
      server: { tls: await files(second, "second") },
      keys: [alice],
      channels: [main],
    });
    expect(result).toMatchObject({ outcome: "applied", needsRestart: [] });
    expect(await served(second.cert)).toBe(fingerprint(second.cert));
    await expect(served(first.cert)).rejects.toThrow();
    expect(await health()).toBe(200);
  });
});
