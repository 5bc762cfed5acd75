import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoModels } from "../src/demo.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

// Real gRPC tools learn the gateway's contract through server reflection alone: no --schema,
// no proto files, no stubs of ours.

const run = promisify(execFile);
const buf = join("node_modules", ".bin", "buf");
const python = "/usr/bin/python3";

/** Every method the gateway serves, as `buf curl --list-methods` prints them. */
const allMethods = [
  "cozegateway.v1.AudioService/ListVoices",
  "cozegateway.v1.AudioService/Speech",
  "cozegateway.v1.AudioService/Transcribe",
  "cozegateway.v1.ChatService/CancelChat",
  "cozegateway.v1.ChatService/Chat",
  "cozegateway.v1.ChatService/ChatStream",
  "cozegateway.v1.ModelService/ListModels",
  "cozegateway.v1.WorkflowService/GetWorkflowRun",
  "cozegateway.v1.WorkflowService/ResumeWorkflow",
  "cozegateway.v1.WorkflowService/ResumeWorkflowRun",
  "cozegateway.v1.WorkflowService/RunWorkflow",
  "cozegateway.v1.WorkflowService/WatchWorkflow",
  "grpc.health.v1.Health/Check",
  "grpc.health.v1.Health/Watch",
  "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
  "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

let fx: GatewayFixture;
beforeAll(async () => {
  fx = await startGatewayFixture();
});
afterAll(async () => {
  await fx?.close();
});

/** Every JSON object `buf curl` printed (one per response message, pretty-printed). */
function bufMessages(stdout: string): Record<string, unknown>[] {
  return stdout
    .split(/\n(?=\{)/)
    .filter((s) => s.trim() !== "")
    .map((s) => JSON.parse(s) as Record<string, unknown>);
}

/** `buf curl` over gRPC with HTTP/2 prior knowledge (h2c) and no schema: reflection it is. */
function bufCurl(...args: string[]) {
  return run(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], {
    timeout: 60_000,
  });
}

describe("buf curl with reflection, no --schema", () => {
  it.each(["grpc-v1", "grpc-v1alpha"])(
    "lists every method over %s reflection without an API key",
    async (protocol) => {
      const { stdout } = await bufCurl("--reflect-protocol", protocol, "--list-methods", fx.url);
      expect(stdout.trim().split("\n")).toEqual(allMethods);
    },
  );

  it("calls a unary RPC it learned by reflection", async () => {
    const { stdout } = await bufCurl(
      "-H",
      `Authorization: Bearer ${fx.key}`,
      "-d",
      JSON.stringify({
        model: demoModels.bot,
        messages: [{ role: "ROLE_USER", content: "learned by reflection" }],
      }),
      `${fx.url}/cozegateway.v1.ChatService/Chat`,
    );
    expect(bufMessages(stdout)[0]).toMatchObject({
      answer: "You said: learned by reflection",
      status: "CHAT_STATUS_COMPLETED",
    });
  });

  it("streams a server-streaming RPC whose messages use imported types (Struct)", async () => {
    const { stdout } = await bufCurl(
      "-H",
      `Authorization: Bearer ${fx.key}`,
      "-d",
      JSON.stringify({ model: demoModels.bot, messages: [{ role: "ROLE_USER", content: "a b" }] }),
      `${fx.url}/cozegateway.v1.ChatService/ChatStream`,
    );
    const messages = bufMessages(stdout);
    expect(Object.keys(messages[0] ?? {})).toEqual(["started"]);
    expect(Object.keys(messages.at(-1) ?? {})).toEqual(["completed"]);
  });

  it("still needs the API key for the call itself", async () => {
    const err = await bufCurl(
      "-d",
      JSON.stringify({ model: demoModels.bot, messages: [{ role: "ROLE_USER", content: "hi" }] }),
      `${fx.url}/cozegateway.v1.ChatService/Chat`,
    ).then(
      () => undefined,
      (e: unknown) => e as { stderr: string },
    );
    // Reflection answered (buf knew the method); the call was refused.
    expect(err?.stderr).toContain("unauthenticated");
    expect(err?.stderr).toContain("missing or invalid API key");
  });

  it("names an unknown service as unknown", async () => {
    const err = await bufCurl("-d", "{}", `${fx.url}/cozegateway.v1.NoSuchService/Do`).then(
      () => undefined,
      (e: unknown) => e as { stderr: string },
    );
    expect(err?.stderr).toContain('failed to find service named "cozegateway.v1.NoSuchService"');
  });
});

describe("Python grpcio with reflection, no stubs of ours", () => {
  it("lists the services, fetches ChatService's file and calls Chat with what it learned", async (ctx) => {
    const hasGrpc =
      existsSync(python) &&
      (await run(python, ["-c", "import grpc, grpc_tools"]).then(
        () => true,
        () => false,
      ));
    if (!hasGrpc) {
      // CI installs python3-grpcio and python3-grpc-tools (.ci/run); there it must run.
      if (process.env.CI) throw new Error("python3-grpcio / python3-grpc-tools are not installed");
      ctx.skip();
    }
    const stubs = await mkdtemp(join(tmpdir(), "coze-gateway-reflection-py-"));
    try {
      // Only the reflection contract, with its own folder as the root so that the generated
      // module does not shadow the `grpc` package.
      await run(python, [
        "-m",
        "grpc_tools.protoc",
        "-I",
        "proto/grpc/reflection/v1",
        `--python_out=${stubs}`,
        `--grpc_python_out=${stubs}`,
        "reflection.proto",
      ]);
      const target = new URL(fx.url).host;
      const { stdout } = await run(
        python,
        ["test/python/reflection_client.py", stubs, target, fx.key],
        { timeout: 60_000 },
      );
      const out = JSON.parse(stdout) as Record<string, unknown>;
      expect((out.services as string[]).sort()).toEqual([
        ...new Set(allMethods.map((m) => m.split("/")[0])),
      ]);
      expect(out.files).toEqual([
        "cozegateway/v1/chat.proto",
        "cozegateway/v1/common.proto",
        "google/protobuf/struct.proto",
      ]);
      expect(out.unknown_symbol).toEqual({
        code: 5,
        message: "symbol not found: cozegateway.v1.Nope",
      });
      expect(out.common_again).toEqual(["cozegateway/v1/common.proto"]);
      expect(out.chat_methods).toEqual(["CancelChat", "Chat", "ChatStream"]);
      expect(out.answer).toBe("You said: hello by reflection");
      expect(out.without_key).toBe("UNAUTHENTICATED");
    } finally {
      await rm(stubs, { recursive: true, force: true });
    }
  });
});
