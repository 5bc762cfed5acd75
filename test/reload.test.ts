import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Client } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { catalog, type Emulator, startEmulator } from "../src/emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { ModelService } from "../src/gen/cozegateway/v1/model_pb.js";
import { createObservability } from "../src/observability/index.js";
import { captureLog } from "./support/log-capture.js";
import {
  type ReloadChannel,
  type ReloadFile,
  type ReloadGateway,
  startReloadGateway,
} from "./support/reload-fixture.js";
import { startTcpTap, type TcpTap } from "./support/tcp-tap.js";

// Issue 15: the config reloads without a restart. Keys, routes and channels swap at once; a call
// keeps the config it started with to its end, streams included; an invalid file changes
// nothing and logs every problem.
const alice = { name: "alice", key: "alice-key-0123456789abcdef" };
const bob = { name: "bob", key: "bob-key-0123456789abcdef" };
const carol = { name: "carol", key: "carol-key-0123456789abcdef" };

let emulator: Emulator;
let channel: ReloadChannel;
const open: { close(): Promise<void> }[] = [];
beforeAll(async () => {
  emulator = await startEmulator({ timing: { deltaMs: 0, slowDeltaMs: 40 } });
  const app = await emulator.createApp();
  channel = { name: "main", baseUrl: emulator.url, app, bot: catalog.bots.echo, models: ["echo"] };
});
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});
afterAll(async () => {
  await emulator?.close();
});

async function start(file: ReloadFile, options: Parameters<typeof startReloadGateway>[1] = {}) {
  const gw = await startReloadGateway(file, options);
  open.push(gw);
  return gw;
}

async function tap(gw: ReloadGateway): Promise<TcpTap> {
  const t = await startTcpTap(gw.url);
  open.push(t);
  return t;
}

const auth =
  (key: () => string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${key()}`);
    return next(req);
  };

const user = (content: string) => create(ChatMessageSchema, { role: Role.USER, content });

function chatClient(url: string, key: string) {
  return createClient(
    ChatService,
    createGrpcTransport({ baseUrl: url, interceptors: [auth(() => key)] }),
  );
}

describe("keys", () => {
  it("lets a key added by a reload in, and turns a removed one away at once on open keep-alive connections", async () => {
    const gw = await start({ keys: [alice, bob], channels: [channel] });
    const restTap = await tap(gw);
    const grpcTap = await tap(gw);
    // One HTTP/1.1 keep-alive connection, and one HTTP/2 connection for gRPC.
    const rest = new Client(restTap.url);
    open.push(rest);
    const status = async (key: string) => {
      const res = await rest.request({
        path: "/v1/models",
        method: "GET",
        headers: { authorization: `Bearer ${key}` },
      });
      await res.body.text();
      return res.statusCode;
    };
    let grpcKey = bob.key;
    const models = createClient(
      ModelService,
      createGrpcTransport({ baseUrl: grpcTap.url, interceptors: [auth(() => grpcKey)] }),
    );
    expect(await status(bob.key)).toBe(200);
    expect(await status(carol.key)).toBe(401);
    expect((await models.listModels({})).models.map((m) => m.name)).toContain("echo");

    const result = await gw.reload({ keys: [alice, carol], channels: [channel] });
    expect(result).toMatchObject({ outcome: "applied", errors: [], needsRestart: [] });

    // The connections that authenticated bob before the reload are the same ones.
    expect(await status(bob.key)).toBe(401);
    expect(await status(carol.key)).toBe(200);
    await expect(models.listModels({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    grpcKey = carol.key;
    expect((await models.listModels({})).models.map((m) => m.name)).toContain("echo");
    expect(restTap.accepted).toBe(1);
    expect(grpcTap.accepted).toBe(1);
  });

  it("rotates a key: the new value beside the old, then the old one removed", async () => {
    const next = { name: "alice-next", key: "alice-next-key-0123456789abcdef" };
    const gw = await start({ keys: [alice], channels: [channel] });
    const chat = (key: string) =>
      chatClient(gw.url, key).chat({ model: "echo", messages: [user("hi")] });
    await expect(chat(next.key)).rejects.toMatchObject({ code: Code.Unauthenticated });
    await gw.reload({ keys: [alice, next], channels: [channel] });
    expect((await chat(alice.key)).answer).toBe("You said: hi");
    expect((await chat(next.key)).answer).toBe("You said: hi");
    await gw.reload({ keys: [next], channels: [channel] });
    await expect(chat(alice.key)).rejects.toMatchObject({ code: Code.Unauthenticated });
    expect((await chat(next.key)).answer).toBe("You said: hi");
  });
});

describe("an invalid file", () => {
  it("keeps the running config and logs each of its problems, with no secret", async () => {
    const log = captureLog();
    const observability = createObservability({ level: "info", destination: log.out });
    const gw = await start({ keys: [alice], channels: [channel] }, { observability });
    const secret = "too-short-secret";
    const result = await gw.reload({
      server: { port: 70000, idle_timeout_ms: 5 },
      serverSecret: secret,
      keys: [{ name: "alice", key: "sk-short" }, carol],
      channels: [{ ...channel, models: [{ name: "both", bot_id: "1", workflow_id: "2" }] }],
    });
    const text = await readFile(gw.path);
    const sha256 = createHash("sha256").update(text).digest("hex").slice(0, 12);
    expect(result.outcome).toBe("invalid");
    expect(result.sha256).toBe(sha256);
    expect(result.errors).toEqual([
      `${gw.path}: server.port: must be an integer from 0 to 65535`,
      `${gw.path}: server.idle_timeout_ms: must be an integer from 1000 to 3600000`,
      expect.stringMatching(/: server_secret: /),
      expect.stringMatching(/: api_keys\[alice\]\.key: /),
      `${gw.path}: channels[main].models[both]: has both bot_id and workflow_id; give one`,
    ]);

    // The running config serves on: alice in, carol (only in the bad file) out.
    const chat = (key: string) =>
      chatClient(gw.url, key).chat({ model: "echo", messages: [user("hi")] });
    expect((await chat(alice.key)).answer).toBe("You said: hi");
    await expect(chat(carol.key)).rejects.toMatchObject({ code: Code.Unauthenticated });

    observability.flush();
    await new Promise((resolve) => setImmediate(resolve));
    const lines = log.lines();
    const problems = lines.filter((l) => l.msg === "config reload: invalid config");
    expect(problems.map((l) => l.error)).toEqual(result.errors);
    expect(lines.filter((l) => l.msg === "config reload")).toEqual([
      expect.objectContaining({ outcome: "invalid", sha256, errors: 5, kept: "running" }),
    ]);
    for (const leak of [secret, "sk-short", carol.key, alice.key, ...pemLines(channel)]) {
      expect(log.text()).not.toContain(leak);
    }
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toContain('coze_gateway_config_reloads_total{outcome="invalid"} 1');
    expect(metrics).toContain('coze_gateway_config_reloads_total{outcome="applied"} 0');
    expect(metrics).toMatch(/^coze_gateway_config_last_reload_successful 0$/m);
  });
});

function pemLines(c: ReloadChannel): string[] {
  return c.app.privateKeyPem.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"));
}

describe("routes", () => {
  it("sends new calls the new route while streams in flight finish on the old one", async () => {
    const slowRoute = { ...channel, models: [{ name: "m", bot_id: catalog.bots.slow }] };
    const echoRoute = { ...channel, models: [{ name: "m", bot_id: catalog.bots.echo }] };
    const gw = await start({ keys: [alice], channels: [slowRoute] });
    const chat = chatClient(gw.url, alice.key);
    const slowAnswer = (text: string) =>
      `You said: ${text}. This answer arrives slowly, one word at a time, so that cancellation and client disconnects can be observed.`;

    // A gRPC stream and a REST event stream, each past its first delta before the reload.
    const grpc = chat.chatStream({ model: "m", messages: [user("one")] })[Symbol.asyncIterator]();
    let grpcText = "";
    for (;;) {
      const { value } = await grpc.next();
      if (value?.event.case === "delta") {
        grpcText += value.event.value.text;
        break;
      }
    }
    const rest = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${alice.key}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "m",
        stream: true,
        messages: [{ role: "user", content: "two" }],
      }),
    });
    const reader = (rest.body as ReadableStream<Uint8Array>).getReader();
    let sse = "";
    while (!sse.includes('"content"')) {
      const { value } = await reader.read();
      sse += new TextDecoder().decode(value);
    }

    expect((await gw.reload({ keys: [alice], channels: [echoRoute] })).outcome).toBe("applied");
    // New calls, on both doors, take the new route at once.
    expect((await chat.chat({ model: "m", messages: [user("three")] })).answer).toBe(
      "You said: three",
    );
    const unary = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${alice.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "four" }] }),
    });
    expect(
      ((await unary.json()) as { choices: { message: { content: string } }[] }).choices[0]?.message
        .content,
    ).toBe("You said: four");

    // The streams started before end as the old route's bot answers, whole.
    for (;;) {
      const { value, done } = await grpc.next();
      if (done) break;
      if (value.event.case === "delta") grpcText += value.event.value.text;
    }
    expect(grpcText).toBe(slowAnswer("one"));
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      sse += new TextDecoder().decode(value);
    }
    const restText = sse
      .split("\n")
      .filter((l) => l.startsWith("data: {"))
      .map((l) => JSON.parse(l.slice(6)).choices[0]?.delta.content ?? "")
      .join("");
    expect(restText).toBe(slowAnswer("two"));
    expect(sse.trimEnd().endsWith("data: [DONE]")).toBe(true);
  });
});

describe("settings that need a restart", () => {
  it("keeps the running port, says so, and applies the rest", async () => {
    const log = captureLog();
    const observability = createObservability({ level: "info", destination: log.out });
    const gw = await start({ keys: [alice], channels: [channel] }, { observability });
    const result = await gw.reload({
      server: { port: 1, cors_origins: ["https://app.example.com"] },
      keys: [alice, carol],
      channels: [channel],
    });
    expect(result.outcome).toBe("applied");
    expect(result.needsRestart).toEqual([
      `${gw.path}: server.port: changed (running 0, file 1); needs a restart`,
      `${gw.path}: server.cors_origins: changed (running [], file ["https://app.example.com"]); needs a restart`,
    ]);
    // Still on the port it listens on, and carol, new in the file, is in.
    const chat = chatClient(gw.url, carol.key);
    expect((await chat.chat({ model: "echo", messages: [user("hi")] })).answer).toBe(
      "You said: hi",
    );
    observability.flush();
    await new Promise((resolve) => setImmediate(resolve));
    const lines = log.lines();
    expect(
      lines.filter((l) => l.msg === "config reload: needs a restart").map((l) => l.setting),
    ).toEqual(result.needsRestart);
    expect(lines.filter((l) => l.msg === "config reload")).toEqual([
      expect.objectContaining({ outcome: "applied", needsRestart: 2, keys: 2, channelsKept: 1 }),
    ]);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toContain('coze_gateway_config_reloads_total{outcome="applied"} 1');
    expect(metrics).toContain(`coze_gateway_config_info{sha256="${result.sha256}"} 1`);
    expect(metrics).toMatch(/^coze_gateway_config_last_reload_successful 1$/m);
  });
});
