/**
 * Fidelity for issue 17: the official Coze JS SDK (`@coze/api`, unchanged) against what the
 * emulator learned from coze-api.md §14 and §17. The SDK has no client for the non-stream
 * `POST /v1/workflows/resume` (§5.3, §14.3: "no SDK implements it"), so that endpoint is called
 * as the docs' curl does, with the SDK's own token; everything the SDK has goes through it.
 */

import { APIError, CozeAPI, getJWTToken, RateLimitError, WorkflowEventType } from "@coze/api";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { catalog, type Emulator, type GeneratedApp, startEmulator } from "../src/emulator/index.js";

let emulator: Emulator;
let app: GeneratedApp;
let client: CozeAPI;
let token: string;

beforeAll(async () => {
  emulator = await startEmulator({ timing: { pingMs: 5 } });
  app = await emulator.createApp();
  token = (
    await getJWTToken({
      baseURL: emulator.url,
      appId: app.clientId,
      aud: emulator.host,
      keyid: app.publicKeyId,
      privateKey: app.privateKeyPem,
    })
  ).access_token;
  client = new CozeAPI({ token, baseURL: emulator.url });
});
afterEach(() => emulator.reset());
afterAll(() => emulator.close());

type Interrupt = {
  data: string;
  type: number;
  event_id: string;
  required_parameters?: Record<string, unknown>;
};

describe("@coze/api and the emulator's plans, interrupts and limits", () => {
  it("runs.create with is_async on the free plan throws Coze's 6003", async () => {
    emulator.faults.inject({ kind: "free_plan", clientId: app.clientId });
    const err = await client.workflows.runs
      .create({ workflow_id: catalog.workflows.echo, is_async: true })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).code).toBe(6003);
    expect((err as APIError).msg).toContain("is_async=true is a premium feature");
  });

  it("runs.create returns a sync run's interrupt_data (the raw body), answered by /v1/workflows/resume", async () => {
    const res = (await client.workflows.runs.create({
      workflow_id: catalog.workflows.interrupt,
      parameters: { interrupt_type: 5, data_shape: "json" },
    })) as unknown as { data: string; execute_id: string; interrupt_data: Interrupt };
    expect(res.data).toBe("");
    const i = res.interrupt_data;
    expect(i).toMatchObject({
      type: 5,
      required_parameters: { img: { required: true, type: "image" } },
    });
    expect(JSON.parse(i.data)).toMatchObject({ content_type: "text" });
    const resumed = await fetch(`${emulator.url}/v1/workflows/resume`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({
        workflow_id: catalog.workflows.interrupt,
        event_id: i.event_id,
        resume_data: '{"file_id":"1"}',
        interrupt_type: 5,
      }),
    });
    const body = (await resumed.json()) as { code: number; data: string; execute_id: string };
    expect(body.code).toBe(0);
    expect(body.execute_id).toBe(res.execute_id);
    expect(JSON.parse(body.data)).toEqual({ output: 'You answered: {"file_id":"1"}' });
  });

  it("runs.stream and runs.resume carry every interrupt type with its required_parameters", async () => {
    for (const type of [1, 2, 3, 4, 5, 6, 7]) {
      let interrupt: Interrupt | undefined;
      for await (const e of client.workflows.runs.stream({
        workflow_id: catalog.workflows.interrupt,
        parameters: { interrupt_type: type },
      })) {
        if (e.event === WorkflowEventType.INTERRUPT) {
          interrupt = (e.data as unknown as { interrupt_data: Interrupt }).interrupt_data;
        }
      }
      expect(interrupt?.type, `type ${type}`).toBe(type);
      if (type === 3 || type === 5) expect(interrupt?.required_parameters).toBeDefined();
      const resumed = [];
      for await (const e of client.workflows.runs.resume({
        workflow_id: catalog.workflows.interrupt,
        event_id: interrupt?.event_id ?? "",
        resume_data: "ok",
        interrupt_type: type,
      })) {
        resumed.push(e);
      }
      expect(resumed.at(-1)?.event, `type ${type}`).toBe(WorkflowEventType.DONE);
    }
  });

  it("sees 4013 sent with HTTP 429 as a RateLimitError, and a balance error as Coze's code", async () => {
    emulator.faults.inject({
      kind: "coze_error",
      endpoint: "workflow.run",
      code: 4013,
      status: 429,
      times: 1,
    });
    const limited = await client.workflows.runs
      .create({ workflow_id: catalog.workflows.echo })
      .catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(RateLimitError);
    emulator.faults.inject({ kind: "coze_error", endpoint: "workflow.run", code: 4011, times: 1 });
    const broke = await client.workflows.runs
      .create({ workflow_id: catalog.workflows.echo })
      .catch((e: unknown) => e);
    expect(broke).toBeInstanceOf(APIError);
    expect((broke as APIError).code).toBe(4011);
  });

  it("runs.history shows a run that failed with a quota code as a string error_code", async () => {
    const started = await client.workflows.runs.create({
      workflow_id: catalog.workflows.failing,
      parameters: { error_code: 4028 },
      is_async: true,
    });
    const [entry] = await client.workflows.runs.history(
      catalog.workflows.failing,
      started.execute_id,
    );
    expect(entry).toMatchObject({ execute_status: "Fail", error_code: "4028" });
  });
});
