import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { catalog } from "./catalog.js";
import { startEmulator } from "./server.js";
import { callApi, mintToken, parseSseFrames } from "./testing.js";
import type { Emulator, GeneratedApp } from "./types.js";

// coze-api.md §14 (is_async on a free plan, interrupts in sync replies, the non-stream resume)
// and §17 (limit, quota, balance and plan errors), as the emulator answers them.

let emulator: Emulator;
let app: GeneratedApp;
let other: GeneratedApp;
let token: string;
let otherToken: string;

beforeAll(async () => {
  emulator = await startEmulator({ timing: { pingMs: 5 } });
  app = await emulator.createApp();
  other = await emulator.createApp();
  token = await mintToken(emulator, app);
  otherToken = await mintToken(emulator, other);
});
afterEach(() => emulator.reset());
afterAll(() => emulator.close());

type Json = Record<string, unknown>;
const post = (path: string, body: unknown, as = token) => callApi(emulator, as, "POST", path, body);
const run = (body: Json, as = token) => post("/v1/workflow/run", body, as);
const resume = (body: Json) => post("/v1/workflows/resume", body);
const { interrupt: interruptWf, echo, failing } = catalog.workflows;

describe("is_async on the free plan (§14.1)", () => {
  it("answers 6003 with HTTP 200 for the app on the free plan only, and starts nothing", async () => {
    emulator.faults.inject({ kind: "free_plan", clientId: app.clientId });
    const refused = await run({ workflow_id: echo, is_async: true, parameters: { input: "x" } });
    expect(refused.status).toBe(200);
    expect(refused.json()).toEqual({
      code: 6003,
      msg: "Workflow execution with is_async=true is a premium feature available only to Coze Professional users",
      detail: { logid: refused.headers.get("x-tt-logid") },
    });
    expect(emulator.stats().workflowRunsStarted).toBe(0);
    // A sync run of the same app, and an async run of another app, are fine.
    expect((await run({ workflow_id: echo, parameters: { input: "x" } })).json().code).toBe(0);
    const paid = await run({ workflow_id: echo, is_async: true }, otherToken);
    expect(paid.json().execute_id).toMatch(/^\d{19}$/);
  });

  it("puts every app on the free plan without a client id, until cleared", async () => {
    emulator.faults.inject({ kind: "free_plan" });
    expect((await run({ workflow_id: echo, is_async: true }, otherToken)).json().code).toBe(6003);
    emulator.faults.clear();
    expect((await run({ workflow_id: echo, is_async: true }, otherToken)).json().code).toBe(
      undefined,
    );
  });

  it("refuses a malformed free_plan fault", () => {
    expect(() => emulator.faults.inject({ kind: "free_plan", clientId: "" })).toThrow(TypeError);
  });
});

describe("interrupts of every type, in both data shapes (§14.2)", () => {
  it("sends the type, data and required_parameters in sync replies, streams and history", async () => {
    for (const type of [1, 2, 3, 4, 5, 6, 7]) {
      for (const shape of ["text", "json"]) {
        const parameters = { interrupt_type: type, data_shape: shape };
        const sync = (await run({ workflow_id: interruptWf, parameters })).json();
        expect(sync, `${type} ${shape}`).toMatchObject({ code: 0, data: "" });
        const i = sync.interrupt_data as Json;
        expect(i.type).toBe(type);
        expect(i.event_id).toMatch(/^\d+\/\d+$/);
        if (shape === "json") {
          const form = JSON.parse(i.data as string);
          expect(Object.keys(form).sort()).toEqual(["content", "content_type"]);
        } else expect(() => JSON.parse(i.data as string)).toThrow();
        if (type === 5) {
          expect(i.required_parameters).toEqual({ img: { required: true, type: "image" } });
        }
        if (type === 5 && shape === "json") {
          // The §14.3 example's data, byte for byte.
          expect(i.data).toBe(
            '{"content_type":"text","content":"[{\\"type\\":\\"string\\",\\"name\\":\\"img\\",\\"required\\":true,\\"assistType\\":2}]"}',
          );
        }
        const streamed = await post("/v1/workflow/stream_run", {
          workflow_id: interruptWf,
          parameters,
        });
        const last = parseSseFrames(streamed.text).at(-1);
        expect(last?.event).toBe("Interrupt");
        const wire = JSON.parse(last?.data ?? "{}") as { interrupt_data: Json };
        expect(wire.interrupt_data).toMatchObject({ type, data: i.data });
        const async = (await run({ workflow_id: interruptWf, is_async: true, parameters })).json();
        const read = await callApi(
          emulator,
          token,
          "GET",
          `/v1/workflows/${interruptWf}/run_histories/${async.execute_id}`,
        );
        const entry = read.json<{ data: Json[] }>().data[0] as Json;
        expect(entry.execute_status).toBe("Running");
        expect(entry.interrupt_data).toMatchObject({ type, data: i.data });
      }
    }
  });

  it("refuses an unknown interrupt type or data shape with 4000", async () => {
    for (const parameters of [{ interrupt_type: 8 }, { data_shape: "xml" }]) {
      expect((await run({ workflow_id: interruptWf, parameters })).json().code).toBe(4000);
    }
  });
});

describe("POST /v1/workflows/resume (§14.3)", () => {
  async function interrupted(parameters: Json = {}, isAsync = false) {
    const body = (await run({ workflow_id: interruptWf, parameters, is_async: isAsync })).json();
    if (!isAsync) return { executeId: body.execute_id as string, i: body.interrupt_data as Json };
    const entry = (
      await callApi(
        emulator,
        token,
        "GET",
        `/v1/workflows/${interruptWf}/run_histories/${body.execute_id}`,
      )
    ).json<{ data: Json[] }>().data[0] as Json;
    return { executeId: body.execute_id as string, i: entry.interrupt_data as Json };
  }

  it("answers a sync run's resume like /v1/workflow/run, and asks again for an empty answer", async () => {
    const { executeId, i } = await interrupted({ interrupt_type: 5, data_shape: "json" });
    const again = (
      await resume({
        workflow_id: interruptWf,
        event_id: i.event_id,
        resume_data: "",
        interrupt_type: 5,
      })
    ).json();
    const next = again.interrupt_data as Json;
    expect(again).toMatchObject({ code: 0, data: "", execute_id: executeId });
    expect(next).toMatchObject({
      type: 5,
      data: i.data,
      required_parameters: i.required_parameters,
    });
    expect(next.event_id).not.toBe(i.event_id);
    const done = await resume({
      workflow_id: interruptWf,
      event_id: next.event_id,
      resume_data: '{"file_id":"1456234"}',
      interrupt_type: 5,
    });
    expect(done.json()).toMatchObject({
      code: 0,
      msg: "",
      execute_id: executeId,
      debug_url: expect.stringContaining(`execute_id=${executeId}`),
      usage: expect.any(Object),
    });
    expect(JSON.parse(done.json().data as string)).toEqual({
      output: 'You answered: {"file_id":"1456234"}',
    });
    expect(emulator.stats().calls["workflow.resume"]).toBe(2);
  });

  it("answers an async run's resume with its execute id at once; history shows the outcome", async () => {
    const { executeId, i } = await interrupted({}, true);
    const body = (
      await resume({
        workflow_id: interruptWf,
        event_id: i.event_id,
        resume_data: "Oslo",
        interrupt_type: 2,
      })
    ).json();
    expect(body).toMatchObject({ code: 0, execute_id: executeId });
    expect(body.data).toBeUndefined();
    const entry = (
      await callApi(
        emulator,
        token,
        "GET",
        `/v1/workflows/${interruptWf}/run_histories/${executeId}`,
      )
    ).json<{ data: Json[] }>().data[0] as Json;
    expect(entry).toMatchObject({ execute_status: "Success", interrupt_data: null });
  });

  it("answers 4314 for an unknown, foreign or used event id, 4315 for a finished run or a 4th resume", async () => {
    const { i } = await interrupted();
    const ask = (over: Json) =>
      resume({
        workflow_id: interruptWf,
        event_id: i.event_id,
        resume_data: "",
        interrupt_type: 2,
        ...over,
      }).then((r) => r.json().code);
    expect(await ask({ event_id: "1/2" })).toBe(4314);
    expect(await ask({ workflow_id: echo })).toBe(4314);
    expect(await ask({ interrupt_type: 5 })).toBe(4000);
    for (const field of ["workflow_id", "event_id", "resume_data", "interrupt_type"]) {
      expect(await ask({ [field]: undefined }), field).toBe(4000);
    }
    // Three resumes that each ask again, then the 4th is refused.
    let eventId = i.event_id;
    for (let n = 0; n < 3; n++) {
      const body = (
        await resume({
          workflow_id: interruptWf,
          event_id: eventId,
          resume_data: "",
          interrupt_type: 2,
        })
      ).json();
      expect(body.code).toBe(0);
      // A used event id: no record for it while the run has resumes left, 4315 after.
      expect(await ask({ event_id: eventId })).toBe(n < 2 ? 4314 : 4315);
      eventId = (body.interrupt_data as Json).event_id;
    }
    expect(await ask({ event_id: eventId })).toBe(4315);
    const fresh = await interrupted();
    const ok = await ask({ event_id: fresh.i.event_id, resume_data: "Rome" });
    expect(ok).toBe(0);
    expect(await ask({ event_id: fresh.i.event_id })).toBe(4315);
  });
});

describe("Coze's limit, quota, balance and plan errors (§17)", () => {
  it("answers a coze_error fault with the code's envelope at the status given, then works again", async () => {
    emulator.faults.inject({
      kind: "coze_error",
      endpoint: "workflow.run",
      code: 4013,
      status: 429,
      retryAfterSeconds: 3,
      times: 1,
    });
    const limited = await run({ workflow_id: echo });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("3");
    expect(limited.json()).toMatchObject({
      code: 4013,
      msg: "Model's request rate limit exceeded",
    });
    expect((await run({ workflow_id: echo })).json().code).toBe(0);
    emulator.faults.inject({ kind: "coze_error", code: 4011, times: 1 });
    const broke = await post("/v1/workflow/stream_run", { workflow_id: echo });
    expect(broke.status).toBe(200);
    expect(broke.headers.get("content-type")).toBe("application/json");
    expect(broke.json()).toMatchObject({ code: 4011, msg: expect.stringContaining("balance") });
    expect(() => emulator.faults.inject({ kind: "coze_error", code: 4011 } as never)).toThrow(
      TypeError,
    );
  });

  it("fails the failing workflow with the code asked for: envelope, Error event, history", async () => {
    const parameters = { error_code: 4028 };
    const sync = (await run({ workflow_id: failing, parameters })).json();
    expect(sync).toMatchObject({ code: 4028, msg: expect.stringContaining("credits") });
    const streamed = await post("/v1/workflow/stream_run", { workflow_id: failing, parameters });
    const frame = parseSseFrames(streamed.text).at(-1);
    expect(frame?.event).toBe("Error");
    expect(JSON.parse(frame?.data ?? "{}")).toMatchObject({ error_code: 4028 });
    const async = (await run({ workflow_id: failing, parameters, is_async: true })).json();
    const entry = (
      await callApi(
        emulator,
        token,
        "GET",
        `/v1/workflows/${failing}/run_histories/${async.execute_id}`,
      )
    ).json<{ data: Json[] }>().data[0] as Json;
    expect(entry).toMatchObject({ execute_status: "Fail", error_code: "4028" });
  });
});
