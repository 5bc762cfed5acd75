import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalog } from "../src/emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { type EmulatorProcess, startEmulatorProcess } from "./support/emulator-process.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gateway-process.js";

// Issue #5 "Security": the built gateway runs with a known private key and a known caller key,
// serves traffic that includes failures of every kind, and neither the key, the caller key nor
// any access token Coze issued may appear in its logs, error bodies, metrics or health output.
const callerKey = "sk-security-test-0123456789abcdef";
const tokenPattern = /czs_[A-Za-z0-9]{8,}/;

let emulator: EmulatorProcess;
let gateway: GatewayProcess;
let url = "";
const seen: string[] = []; // every body, message and header value a caller received

async function admin(path: string, body?: unknown, method = "POST") {
  await fetch(`${emulator.url}/__emulator/${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

beforeAll(async () => {
  emulator = await startEmulatorProcess();
  gateway = await startGatewayProcess({
    emulator,
    callerKey,
    env: { COZE_GATEWAY_LOG_LEVEL: "debug" },
  });
  url = gateway.url;
}, 30_000);

afterAll(async () => {
  await gateway?.close();
  await emulator?.close();
});

async function rest(path: string, init: RequestInit & { key?: string } = {}) {
  const res = await fetch(`${url}${path}`, {
    ...init,
    headers: {
      "content-type": "application/json",
      ...(init.key === undefined ? {} : { authorization: `Bearer ${init.key}` }),
    },
  });
  seen.push(await res.text(), ...[...res.headers.entries()].map(([k, v]) => `${k}: ${v}`));
  return res.status;
}

const chatBody = (model: string, stream = false) =>
  JSON.stringify({ model, stream, messages: [{ role: "user", content: "hello" }] });

describe("no secret reaches a caller, a log line or the metrics", () => {
  it("drives successes and every kind of failure through REST and gRPC", async () => {
    expect(
      await rest("/v1/chat/completions", {
        method: "POST",
        key: callerKey,
        body: chatBody("echo"),
      }),
    ).toBe(200);
    expect(
      await rest("/v1/chat/completions", {
        method: "POST",
        key: callerKey,
        body: chatBody("echo", true),
      }),
    ).toBe(200);
    expect(
      await rest("/v1/chat/completions", {
        method: "POST",
        key: "wrong-key",
        body: chatBody("echo"),
      }),
    ).toBe(401);
    expect(
      await rest("/v1/chat/completions", {
        method: "POST",
        key: callerKey,
        body: chatBody("nope"),
      }),
    ).toBe(404);
    expect(
      await rest("/v1/chat/completions", { method: "POST", key: callerKey, body: "{not json" }),
    ).toBe(400);
    await admin("faults", { kind: "status", endpoint: "chat", status: 503, times: 1 });
    expect(
      await rest("/v1/chat/completions", {
        method: "POST",
        key: callerKey,
        body: chatBody("echo"),
      }),
    ).toBe(503);
    await admin("faults", { kind: "reset", endpoint: "chat", afterEvents: 2 });
    expect(
      await rest("/v1/chat/completions", {
        method: "POST",
        key: callerKey,
        body: chatBody("echo", true),
      }),
    ).toBe(200);
    await admin("faults", undefined, "DELETE");
    // Revoked tokens: the gateway refreshes, and the old and new tokens must stay private.
    await admin("revoke");
    expect(
      await rest("/v1/chat/completions", {
        method: "POST",
        key: callerKey,
        body: chatBody("echo"),
      }),
    ).toBe(200);
    // A token endpoint that is down: the error names the step, never the JWT.
    await admin("revoke");
    await admin("faults", { kind: "token_down" });
    expect(
      await rest("/v1/chat/completions", {
        method: "POST",
        key: callerKey,
        body: chatBody("echo"),
      }),
    ).toBe(503);
    await admin("faults", undefined, "DELETE");

    const transport = createGrpcTransport({
      baseUrl: url,
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${callerKey}`);
          return next(req);
        },
      ],
    });
    const chat = createClient(ChatService, transport);
    const workflows = createClient(WorkflowService, transport);
    const failures = [
      chat.chat({
        botId: catalog.bots.failing,
        messages: [create(ChatMessageSchema, { role: Role.USER, content: "x" })],
      }),
      workflows.runWorkflow({ workflowId: catalog.workflows.failing, parameters: { input: "x" } }),
      workflows.getWorkflowRun({ workflowId: catalog.workflows.echo, executeId: "1234" }),
      // Caught at once: a call refused before Coze may fail while an earlier one is awaited.
    ].map((call) => call.catch((e: unknown) => e));
    for (const call of failures) {
      const err = ConnectError.from(await call);
      seen.push(err.rawMessage, ...[...err.metadata.entries()].map(([k, v]) => `${k}: ${v}`));
    }
    for (const path of ["/metrics", "/healthz", "/readyz"]) await rest(path);
  }, 60_000);

  it("finds no private key, caller key or access token anywhere", async () => {
    // Every line the gateway wrote: it writes out its batched log lines when it stops.
    await gateway.close();
    const logs = gateway.output();
    const everything = [logs, ...seen].join("\n");
    // The run did what it should: failures were logged, tokens were issued and refreshed.
    expect(logs).toContain('"msg":"request"');
    expect((await emulator.stats()).tokenRequests).toBeGreaterThanOrEqual(3);
    expect(seen.join("\n")).toContain("coze_gateway_requests_total");
    const keyLines = emulator.app.privateKeyPem
      .split("\n")
      .filter((l) => l.length > 20 && !l.startsWith("-----"));
    for (const line of keyLines) expect(everything).not.toContain(line);
    expect(everything).not.toContain(callerKey);
    expect(everything).not.toMatch(tokenPattern);
    expect(everything).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./); // a JWT
  });
});
