import { create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoModels } from "../src/demo.js";
import { catalog } from "../src/emulator/index.js";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { RunStatus, WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

// Issue #13: JSON nested deeper than the gateway can carry. Parameters too deep to send are the
// caller's mistake, named before Coze is called; an output too deep for a google.protobuf.Value
// still comes back whole as JSON text.
let fx: GatewayFixture;
let openai: OpenAI;
beforeAll(async () => {
  fx = await startGatewayFixture();
  openai = new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: fx.key, maxRetries: 0 });
});
afterAll(async () => {
  await fx?.close();
});

const bearer: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${fx.key}`);
  return next(req);
};
const protocols = {
  gRPC: () => createGrpcTransport({ baseUrl: fx.url, interceptors: [bearer] }),
  "Connect JSON": () =>
    createConnectTransport({ baseUrl: fx.url, httpVersion: "1.1", interceptors: [bearer] }),
};

/** `{"input": {"a": {"a": … "leaf" …}}}` with `depth` objects under `input`. */
function nested(depth: number): JsonObject {
  let value: JsonValue = "leaf";
  for (let i = 0; i < depth; i++) value = { a: value };
  return { input: value };
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );

describe("workflow parameters nested too deep", () => {
  it("are a 400 naming parameters over REST, and Coze is not called", async () => {
    const before = fx.demo.emulator.stats().calls["workflow.run"] ?? 0;
    const err = await failure(
      openai.chat.completions.create({
        model: demoModels.workflow,
        messages: [{ role: "user", content: "x" }],
        parameters: nested(40),
      } as OpenAI.ChatCompletionCreateParamsNonStreaming),
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({
      type: "invalid_request_error",
      param: "parameters",
    });
    expect(fx.demo.emulator.stats().calls["workflow.run"] ?? 0).toBe(before);
  });

  it("are a 400 naming parameters over REST even 5,000 levels deep (more than clients can encode)", async () => {
    const before = fx.demo.emulator.stats();
    // Written by hand: the SDKs' own JSON.stringify gives up at this depth.
    const parameters = `{"input":${'{"a":'.repeat(5_000)}"leaf"${"}".repeat(5_000)}}`;
    for (const stream of [false, true]) {
      const res = await fetch(`${fx.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${fx.key}`, "content-type": "application/json" },
        body: `{"model":"${demoModels.workflow}","stream":${stream},"messages":[{"role":"user","content":"x"}],"parameters":${parameters}}`,
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: unknown }).error).toMatchObject({
        type: "invalid_request_error",
        param: "parameters",
      });
    }
    const after = fx.demo.emulator.stats();
    expect(after.calls["workflow.run"]).toBe(before.calls["workflow.run"]);
    expect(after.calls["workflow.stream_run"]).toBe(before.calls["workflow.stream_run"]);
  });

  for (const [name, transport] of Object.entries(protocols)) {
    it(`are InvalidArgument naming parameters over ${name}, and Coze is not called`, async () => {
      const before = fx.demo.emulator.stats();
      const wf = createClient(WorkflowService, transport());
      const unary = ConnectError.from(
        await failure(wf.runWorkflow({ model: demoModels.workflow, parameters: nested(40) })),
      );
      expect(unary.code).toBe(Code.InvalidArgument);
      expect(unary.rawMessage).toMatch(/^parameters: /);
      const streamed = ConnectError.from(
        await failure(
          (async () => {
            for await (const _ of wf.watchWorkflow({
              model: demoModels.workflow,
              parameters: nested(40),
            }));
          })(),
        ),
      );
      expect(streamed.code).toBe(Code.InvalidArgument);
      const chat = createClient(ChatService, transport());
      const turn = ConnectError.from(
        await failure(
          chat.chat({
            model: demoModels.chatflow,
            messages: [create(ChatMessageSchema, { role: Role.USER, content: "x" })],
            parameters: nested(40),
          }),
        ),
      );
      expect(turn.code).toBe(Code.InvalidArgument);
      expect(turn.rawMessage).toMatch(/^parameters: /);
      const after = fx.demo.emulator.stats();
      expect(after.calls).toEqual(before.calls);
    });
  }

  it("are run when they nest as deep as allowed", async () => {
    const wf = createClient(WorkflowService, protocols.gRPC());
    // `parameters` is level 1, `input` level 2: 32 levels in all.
    const res = await wf.runWorkflow({ model: demoModels.workflow, parameters: nested(31) });
    expect(res.status).toBe(RunStatus.SUCCEEDED);
  });
});

describe("a workflow output nested deep", () => {
  const large = `workflow:${catalog.workflows.large}`;
  const parameters = { size_bytes: 8, depth: 150 };
  const expected = `${"[".repeat(150)}{"output":"xxxxxxxx"}${"]".repeat(150)}`;

  it("comes back whole over REST", async () => {
    const res = await openai.chat.completions.create({
      model: large,
      messages: [{ role: "user", content: "x" }],
      parameters,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(res.choices[0]?.message.content).toBe(expected);
  });

  for (const [name, transport] of Object.entries(protocols)) {
    it(`comes back whole as output_json over ${name}, without the too deep output value`, async () => {
      const wf = createClient(WorkflowService, transport());
      const res = await wf.runWorkflow({ model: large, parameters });
      expect(res.status).toBe(RunStatus.SUCCEEDED);
      expect(res.outputJson).toBe(expected);
      expect(res.output).toBeUndefined();
      const events: string[] = [];
      let streamed = "";
      for await (const ev of wf.watchWorkflow({ model: large, parameters })) {
        events.push(ev.event.case ?? "");
        if (ev.event.case === "result") streamed = ev.event.value.outputJson;
      }
      expect(events.at(-1)).toBe("result");
      expect(streamed).toBe(expected);
    });
  }
});
