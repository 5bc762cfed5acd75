import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import type { Response, ResponseStreamEvent } from "openai/resources/responses/responses";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../src/config/index.js";
import { catalog } from "../src/emulator/index.js";
import {
  RunMode,
  RunStatus,
  type WorkflowInterrupt,
  WorkflowService,
} from "../src/gen/cozegateway/v1/workflow_pb.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";
import { handed } from "./support/handles.js";

// Issue 17: interrupts in a synchronous run's reply (coze-api.md §14.2), every type the
// reference lists with its required_parameters, data as plain text or the JSON form, answered
// through the non-stream resume (§14.3), over gRPC, Connect, Chat Completions and Responses.

const otherKey = "other-key-0123456789abcdef";
const model = `workflow:${catalog.workflows.interrupt}`;
type Extra = Record<string, unknown>;

let fx: GatewayFixture;
beforeAll(async () => {
  fx = await startGatewayFixture({
    apiKeys: [
      { name: "other", sha256: hashApiKey(otherKey), models: undefined, rawCozeIds: false },
    ],
  });
});
afterAll(async () => {
  await fx?.close();
});
beforeEach(() => fx.demo.emulator.reset());
afterEach(async () => {
  await expect.poll(() => fx.demo.emulator.stats().openStreams).toBe(0);
});

function workflows(kind: "grpc" | "connect" = "grpc", key = fx.key) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
  const transport =
    kind === "grpc"
      ? createGrpcTransport({ baseUrl: fx.url, interceptors: [auth] })
      : createConnectTransport({ baseUrl: fx.url, httpVersion: "1.1", interceptors: [auth] });
  return createClient(WorkflowService, transport);
}
const calls = () => fx.demo.emulator.stats().calls;
const openai = (key = fx.key) =>
  new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: key, maxRetries: 0 });

/** What the emulator's interrupt workflow asks, per type (src/emulator/workflows.ts). */
const asked: Record<number, string> = {
  1: "Run get_location on your device and send its result.",
  2: "Which city?",
  3: "Which city, and which date?",
  4: "What would you like to do next?",
  5: "Please provide: img (image)",
  6: "Run the client-side plugin get_location and send its result.",
  7: "Authorize the plugin, then send the authorization code.",
};
const required: Record<number, Extra> = {
  3: { city: { type: "string", required: true }, date: { type: "string", required: false } },
  5: { img: { required: true, type: "image" } },
};
const inputFields = [{ type: "string", name: "img", required: true, assistType: 2 }];

/** The interrupt as the contract carries it, in plain JSON. */
function plain(i: WorkflowInterrupt | undefined) {
  return {
    type: i?.type,
    question: i?.question,
    contentType: i?.contentType,
    content: i?.content && toJson(ValueSchema, i.content),
    requiredParameters: i?.requiredParameters,
  };
}

describe("a synchronous run's interrupts over gRPC", () => {
  it("shows every type's question, never JSON, with its parts; ResumeWorkflowRun answers it", async () => {
    const wf = workflows();
    let resumes = 0;
    for (const type of [1, 2, 3, 4, 5, 6, 7]) {
      for (const shape of ["text", "json"] as const) {
        const what = `type ${type}, ${shape}`;
        const r = await wf.runWorkflow({
          model,
          parameters: { interrupt_type: type, data_shape: shape },
        });
        expect(r.status, what).toBe(RunStatus.INTERRUPTED);
        expect(r.interrupt?.eventId, what).toMatch(handed);
        const json = shape === "json";
        const content = type === 5 ? inputFields : asked[type];
        expect(plain(r.interrupt), what).toEqual({
          type,
          question: asked[type],
          contentType: json ? "text" : "",
          // The plain-text input node sends no data at all (§5.2's example): nothing to carry.
          content: json ? content : undefined,
          requiredParameters: required[type],
        });
        const done = await wf.resumeWorkflowRun({
          model,
          eventId: r.interrupt?.eventId ?? "",
          interruptType: type,
          resumeData: `answer ${type}`,
        });
        resumes++;
        expect(done.status, what).toBe(RunStatus.SUCCEEDED);
        expect(JSON.parse(done.outputJson), what).toEqual({
          output: `You answered: answer ${type}`,
        });
      }
    }
    // Every answer went through the non-stream resume (§14.3), none through stream_resume.
    expect(calls()["workflow.resume"]).toBe(resumes);
    expect(calls()["workflow.stream_resume"]).toBeUndefined();
  });

  it("asks again through ResumeWorkflow (a stream), then answers over Connect", async () => {
    const r = await workflows().runWorkflow({ model, parameters: { interrupt_type: 5 } });
    const events = [];
    for await (const e of workflows().resumeWorkflow({
      model,
      eventId: r.interrupt?.eventId ?? "",
      interruptType: 5,
      resumeData: "",
    })) {
      events.push(e.event);
    }
    expect(events).toHaveLength(1);
    const again = events[0];
    expect(again?.case).toBe("interrupt");
    if (again?.case !== "interrupt") return;
    expect(again.value.question).toBe("Please provide: img (image)");
    expect(again.value.eventId).not.toBe(r.interrupt?.eventId);
    const done = await workflows("connect").resumeWorkflowRun({
      model,
      eventId: again.value.eventId,
      interruptType: 5,
      resumeData: '{"file_id":"1456234"}',
    });
    expect(JSON.parse(done.outputJson)).toEqual({ output: 'You answered: {"file_id":"1456234"}' });
    expect(calls()["workflow.resume"]).toBe(2);
  });

  it("answers a streamed interrupt with ResumeWorkflowRun, through stream_resume", async () => {
    let interrupt: WorkflowInterrupt | undefined;
    for await (const e of workflows().watchWorkflow({
      model,
      parameters: { interrupt_type: 3, data_shape: "json" },
    })) {
      if (e.event.case === "interrupt") interrupt = e.event.value;
    }
    expect(plain(interrupt)).toMatchObject({
      type: 3,
      question: asked[3],
      contentType: "text",
      requiredParameters: required[3],
    });
    expect(interrupt?.nodeTitle).toBe("Require infos");
    const done = await workflows().resumeWorkflowRun({
      model,
      eventId: interrupt?.eventId ?? "",
      interruptType: 3,
      resumeData: "Oslo",
    });
    expect(JSON.parse(done.outputJson)).toEqual({ output: "You answered: Oslo" });
    expect([calls()["workflow.stream_resume"], calls()["workflow.resume"]]).toEqual([1, undefined]);
  });

  it("stops watching an async run at its interrupt, and ResumeWorkflow polls the resumed run", async () => {
    const asyncModel = `workflow-async:${catalog.workflows.interrupt}`;
    const events = [];
    for await (const e of workflows().watchWorkflow({
      model: asyncModel,
      parameters: { interrupt_type: 7, data_shape: "json" },
    })) {
      events.push(e.event);
    }
    const last = events.at(-1);
    const progress = events.at(-2);
    expect(progress?.case === "progress" && progress.value.status).toBe(RunStatus.INTERRUPTED);
    expect(last?.case).toBe("interrupt");
    if (last?.case !== "interrupt") return;
    expect(last.value.question).toBe(asked[7]);
    const id = progress?.case === "progress" ? progress.value.executeId : "";
    const read = await workflows().getWorkflowRun({ model: asyncModel, executeId: id });
    expect(read.status).toBe(RunStatus.INTERRUPTED);
    expect(read.interrupt?.eventId).toBe(last.value.eventId);
    const rest = await fetch(
      `${fx.url}/v1/workflow_runs/${encodeURIComponent(id)}?model=${encodeURIComponent(asyncModel)}`,
      { headers: { authorization: `Bearer ${fx.key}` } },
    );
    expect(await rest.json()).toMatchObject({
      status: "interrupted",
      interrupt: { event_id: last.value.eventId, type: 7, question: asked[7] },
    });
    const resumed = [];
    for await (const e of workflows().resumeWorkflow({
      model: asyncModel,
      eventId: last.value.eventId,
      interruptType: 7,
      resumeData: "code-123",
    })) {
      resumed.push(e.event);
    }
    const result = resumed.at(-1);
    expect(result?.case === "result" && JSON.parse(result.value.outputJson)).toEqual({
      output: "You answered: code-123",
    });
    expect(calls()["workflow.resume"]).toBe(1);
  });

  it("is another key's to answer never: NotFound, and Coze is not called", async () => {
    const r = await workflows().runWorkflow({ model, parameters: {} });
    const eventId = r.interrupt?.eventId ?? "";
    const tag = eventId.slice(eventId.indexOf(".") + 1);
    const forged = `${eventId.slice(0, eventId.indexOf("."))}.${tag[0] === "A" ? "B" : "A"}${tag.slice(1)}`;
    for (const [what, key, id] of [
      ["another key's", otherKey, eventId],
      ["forged", fx.key, forged],
      ["truncated", fx.key, eventId.slice(0, -1)],
      ["raw", fx.key, eventId.slice(0, eventId.indexOf("."))],
      ["oversized", fx.key, `${"9".repeat(5000)}.${tag}`],
      ["an execute id", fx.key, r.executeId],
    ] as const) {
      const err = await workflows("grpc", key)
        .resumeWorkflowRun({ model, eventId: id, interruptType: 2, resumeData: "x" })
        .catch((e: unknown) => e);
      expect(err, what).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code, what).toBe(Code.NotFound);
    }
    const empty = await workflows()
      .resumeWorkflowRun({ model, eventId: "", interruptType: 2, resumeData: "x" })
      .catch((e: unknown) => e);
    expect((empty as ConnectError).code).toBe(Code.InvalidArgument);
    expect((empty as ConnectError).rawMessage).toBe("event_id: is required");
    expect(calls()["workflow.resume"]).toBeUndefined();
  });

  it("says a finished run cannot be resumed (Coze's 4315) as a bad request", async () => {
    const r = await workflows().runWorkflow({ model, parameters: {} });
    const ask = { model, eventId: r.interrupt?.eventId ?? "", interruptType: 2, resumeData: "A" };
    await workflows().resumeWorkflowRun(ask);
    const err = (await workflows()
      .resumeWorkflowRun(ask)
      .catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.metadata.get("x-coze-code")).toBe("4315");
    expect(err.metadata.get("x-coze-step")).toBe("workflow.resume_run");
  });
});

describe("a synchronous run's interrupts over REST", () => {
  it("Chat Completions: the question as content, the parts in `interrupt`, the answer resumed", async () => {
    const client = openai();
    const first = (await client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "upload" }],
      parameters: { interrupt_type: 5, data_shape: "json" },
    } as never)) as unknown as Extra & { choices: { message: { content: string } }[] };
    expect(first.choices[0]?.message.content).toBe("Please provide: img (image)");
    expect(first.interrupt).toEqual({
      event_id: expect.stringMatching(handed),
      type: 5,
      question: "Please provide: img (image)",
      content_type: "text",
      content: inputFields,
      required_parameters: required[5],
    });
    const interrupt = first.interrupt as Extra;
    const answered = (await client.chat.completions.create({
      model,
      messages: [{ role: "user", content: '{"file_id":"99"}' }],
      event_id: interrupt.event_id,
      interrupt_type: interrupt.type,
    } as never)) as unknown as { choices: { message: { content: string } }[] };
    expect(answered.choices[0]?.message.content).toBe('You answered: {"file_id":"99"}');
    expect(calls()["workflow.resume"]).toBe(1);

    // Streamed: a plain-text question node, resumed streamed through the same endpoint.
    const again = (await client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "go" }],
    } as never)) as unknown as Extra;
    const streamed = await client.chat.completions.create({
      model,
      stream: true,
      messages: [{ role: "user", content: "Paris" }],
      event_id: (again.interrupt as Extra).event_id,
      interrupt_type: 2,
    } as never);
    let text = "";
    for await (const c of streamed as unknown as AsyncIterable<{
      choices: { delta: { content?: string } }[];
    }>) {
      text += c.choices[0]?.delta.content ?? "";
    }
    expect(text).toBe("You answered: Paris");
    expect(calls()["workflow.resume"]).toBe(2);
  });

  it("Chat Completions streamed: the question of a JSON interrupt, never the JSON, with node_title", async () => {
    const res = await openai().chat.completions.create({
      model,
      stream: true,
      messages: [{ role: "user", content: "go" }],
      parameters: { interrupt_type: 2, data_shape: "json" },
    } as never);
    const chunks: Extra[] = [];
    for await (const c of res as unknown as AsyncIterable<Extra>) chunks.push(c);
    const text = chunks
      .map((c) => ((c.choices as Extra[])[0]?.delta as Extra | undefined)?.content ?? "")
      .join("");
    expect(text).toBe("Which city?");
    expect(chunks.at(-1)?.interrupt).toMatchObject({
      type: 2,
      question: "Which city?",
      node_title: "Question",
      content_type: "text",
      content: "Which city?",
    });
  });

  it("Responses API: the question as output text and `interrupt`, streamed or not, then resumed", async () => {
    const client = openai();
    const r = (await client.responses.create({
      model,
      input: "dates",
      parameters: { interrupt_type: 3, data_shape: "json" },
    } as never)) as unknown as Response & Extra;
    expect(r.output_text).toBe(asked[3]);
    expect(r.interrupt).toMatchObject({
      type: 3,
      question: asked[3],
      content_type: "text",
      required_parameters: required[3],
    });
    const answered = (await client.responses.create({
      model,
      input: "Oslo, tomorrow",
      event_id: (r.interrupt as Extra).event_id,
      interrupt_type: 3,
    } as never)) as unknown as Response;
    expect(answered.output_text).toBe("You answered: Oslo, tomorrow");
    const events = await client.responses.create({
      model,
      input: "x",
      stream: true,
      parameters: { interrupt_type: 6 },
    } as never);
    const seen: ResponseStreamEvent[] = [];
    for await (const e of events as unknown as AsyncIterable<ResponseStreamEvent>) seen.push(e);
    const done = seen.find((e) => e.type === "response.completed");
    const response = (done as { response: Response & Extra } | undefined)?.response;
    expect(response?.output_text ?? textOf(response)).toBe(asked[6]);
    expect(response?.interrupt).toMatchObject({ type: 6, question: asked[6] });
  });

  it("answers another key's interrupt with 404 before Coze is called", async () => {
    const first = (await openai().chat.completions.create({
      model,
      messages: [{ role: "user", content: "go" }],
    } as never)) as unknown as Extra;
    const err = await openai(otherKey)
      .chat.completions.create({
        model,
        messages: [{ role: "user", content: "x" }],
        event_id: (first.interrupt as Extra).event_id,
        interrupt_type: 2,
      } as never)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(404);
    expect(calls()["workflow.resume"]).toBeUndefined();
  });
});

describe("RunWorkflow in RUN_MODE_ASYNC_WAIT", () => {
  it("answers an async run's interrupt as INTERRUPTED, resumable with ResumeWorkflowRun", async () => {
    const asyncModel = `workflow-async:${catalog.workflows.interrupt}`;
    const r = await workflows().runWorkflow({
      model: asyncModel,
      mode: RunMode.ASYNC_WAIT,
      parameters: { interrupt_type: 2 },
    });
    expect(r.status).toBe(RunStatus.INTERRUPTED);
    expect(r.interrupt?.question).toBe("Which city?");
    const done = await workflows().resumeWorkflowRun({
      model: asyncModel,
      eventId: r.interrupt?.eventId ?? "",
      interruptType: 2,
      resumeData: "Kyiv",
    });
    expect(done.status).toBe(RunStatus.SUCCEEDED);
    expect(JSON.parse(done.outputJson)).toEqual({ output: "You answered: Kyiv" });
  });
});

/** The text of a response's message items. */
function textOf(r: Response | undefined): string {
  return (r?.output ?? [])
    .flatMap((i) => (i.type === "message" ? i.content : []))
    .map((c) => (c.type === "output_text" ? c.text : ""))
    .join("");
}
