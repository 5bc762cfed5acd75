import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { catalog, type EndpointName } from "../src/emulator/index.js";
import { RunMode, WorkflowService } from "../src/gen/cozegateway/v1/workflow_pb.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";
import { cozeIdOf, handed } from "./support/handles.js";

// Issue 17: Coze's rate-limit, quota, balance and plan errors (coze-api.md §17) are told apart:
// 429 with Retry-After where waiting helps, a final error where it does not, never retried in
// a loop. Upstream calls are counted exactly at the emulator.

const model = `workflow:${catalog.workflows.echo}`;
type Extra = Record<string, unknown>;

let fx: GatewayFixture;
beforeAll(async () => {
  fx = await startGatewayFixture({ pollIntervalMs: 10 });
});
afterAll(async () => {
  await fx?.close();
});
beforeEach(() => fx.demo.emulator.reset());
afterEach(async () => {
  await expect.poll(() => fx.demo.emulator.stats().openStreams).toBe(0);
});

function workflows(kind: "grpc" | "connect") {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${fx.key}`);
    return next(req);
  };
  const transport =
    kind === "grpc"
      ? createGrpcTransport({ baseUrl: fx.url, interceptors: [auth] })
      : createConnectTransport({ baseUrl: fx.url, httpVersion: "1.1", interceptors: [auth] });
  return createClient(WorkflowService, transport);
}
const calls = (endpoint: EndpointName) => fx.demo.emulator.stats().calls[endpoint] ?? 0;
const cozeError = (
  code: number,
  endpoint: EndpointName,
  extra: { status?: number; retryAfterSeconds?: number; times?: number } = {},
) =>
  fx.demo.emulator.faults.inject({
    kind: "coze_error",
    endpoint,
    code,
    times: extra.times ?? 1,
    ...(extra.status === undefined ? {} : { status: extra.status }),
    ...(extra.retryAfterSeconds === undefined
      ? {}
      : { retryAfterSeconds: extra.retryAfterSeconds }),
  });
const complete = () =>
  fetch(`${fx.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${fx.key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });
async function rpcError(p: Promise<unknown>): Promise<ConnectError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

describe("Coze's rate limits: waiting helps", () => {
  const cases: [number, number, number | undefined, string][] = [
    // [Coze code, HTTP status it comes with, Coze's Retry-After, the Retry-After answered]
    [4009, 200, undefined, "5"],
    [4013, 200, undefined, "5"],
    [4020, 200, undefined, "60"],
    [4102, 200, undefined, "5"],
    [4013, 429, 7, "7"],
  ];

  it("are a 429 coze_rate_limited with Retry-After over REST, the run sent once", async () => {
    for (const [code, status, after, expected] of cases) {
      fx.demo.emulator.reset();
      cozeError(code, "workflow.run", { status, retryAfterSeconds: after });
      const res = await complete();
      const what = `${code} at ${status}`;
      expect(res.status, what).toBe(429);
      expect(res.headers.get("retry-after"), what).toBe(expected);
      expect(res.headers.get("x-coze-logid"), what).toBeTruthy();
      const { error } = (await res.json()) as { error: Extra };
      expect(error, what).toMatchObject({
        type: "rate_limit_error",
        code: "coze_rate_limited",
        message: `workflow.run: Coze rate limit reached, retry later (Coze code ${code})`,
      });
      // A run is never sent again by the gateway: the caller decides, after Retry-After.
      expect(calls("workflow.run"), what).toBe(1);
    }
  });

  it("are ResourceExhausted with retry-after metadata over gRPC and Connect", async () => {
    for (const kind of ["grpc", "connect"] as const) {
      for (const [code, status, after, expected] of cases) {
        fx.demo.emulator.reset();
        cozeError(code, "workflow.run", { status, retryAfterSeconds: after });
        const err = await rpcError(workflows(kind).runWorkflow({ model }));
        const what = `${kind} ${code}`;
        expect(err.code, what).toBe(Code.ResourceExhausted);
        expect(err.metadata.get("x-gateway-error"), what).toBe("rate_limited");
        expect(err.metadata.get("x-coze-code"), what).toBe(String(code));
        expect(err.metadata.get("retry-after"), what).toBe(expected);
        expect(calls("workflow.run"), what).toBe(1);
      }
    }
  });

  it("retries a read a bounded number of times, then answers with Retry-After", async () => {
    const wf = workflows("grpc");
    const { executeId } = await wf.runWorkflow({
      model: `workflow-async:${catalog.workflows.echo}`,
      mode: RunMode.ASYNC,
    });
    cozeError(4013, "workflow.history", { times: 10 });
    const err = await rpcError(
      wf.getWorkflowRun({ model: `workflow-async:${catalog.workflows.echo}`, executeId }),
    );
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.metadata.get("retry-after")).toBe("5");
    // The HTTP layer's three attempts (a read is safe to send again), no more.
    expect(calls("workflow.history")).toBe(3);
  });
});

describe("Coze's quota, balance and plan errors: no retry helps", () => {
  const cases: [number, number, string, Code, string][] = [
    // [Coze code, REST status, REST code, gRPC code, x-gateway-error]
    [4008, 403, "coze_quota_exceeded", Code.ResourceExhausted, "quota_exceeded"],
    [4028, 403, "coze_quota_exceeded", Code.ResourceExhausted, "quota_exceeded"],
    [4011, 402, "coze_balance_insufficient", Code.FailedPrecondition, "balance_insufficient"],
    [4019, 402, "coze_balance_insufficient", Code.FailedPrecondition, "balance_insufficient"],
    [4022, 402, "coze_balance_insufficient", Code.FailedPrecondition, "balance_insufficient"],
    [4027, 402, "coze_balance_insufficient", Code.FailedPrecondition, "balance_insufficient"],
    [788788103, 402, "coze_balance_insufficient", Code.FailedPrecondition, "balance_insufficient"],
    [6003, 403, "coze_plan_required", Code.PermissionDenied, "plan_required"],
  ];

  it("are distinct final REST errors the openai SDK does not retry, Coze called once", async () => {
    // The SDK's default retries: it would send a 429 or a 5xx again, not these.
    const client = new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: fx.key });
    for (const [code, status, restCode] of cases) {
      // Even sent with HTTP 429 (the emulator's switch), the Coze code decides (§17.3).
      for (const httpStatus of [200, 429]) {
        fx.demo.emulator.reset();
        cozeError(code, "workflow.run", { status: httpStatus, times: 5 });
        const err = await client.chat.completions
          .create({ model, messages: [{ role: "user", content: "hi" }] })
          .catch((e: unknown) => e);
        const what = `${code} at ${httpStatus}`;
        expect(err, what).toBeInstanceOf(OpenAI.APIError);
        const api = err as InstanceType<typeof OpenAI.APIError>;
        expect([api.status, api.code], what).toEqual([status, restCode]);
        expect(api.headers?.get("x-should-retry"), what).toBe("false");
        expect(api.headers?.get("retry-after"), what).toBeNull();
        expect(api.message, what).toContain(`(Coze code ${code})`);
        expect(calls("workflow.run"), what).toBe(1);
      }
    }
  });

  it("have their own gRPC and Connect codes, without retry-after", async () => {
    for (const kind of ["grpc", "connect"] as const) {
      for (const [code, , , grpcCode, gatewayError] of cases) {
        fx.demo.emulator.reset();
        cozeError(code, "workflow.run", { times: 5 });
        const err = await rpcError(workflows(kind).runWorkflow({ model }));
        const what = `${kind} ${code}`;
        expect(err.code, what).toBe(grpcCode);
        expect(err.metadata.get("x-gateway-error"), what).toBe(gatewayError);
        expect(err.metadata.get("x-coze-code"), what).toBe(String(code));
        expect(err.metadata.get("retry-after"), what).toBeNull();
        expect(calls("workflow.run"), what).toBe(1);
      }
    }
  });

  it("are the same for a bot's chat turn, streamed or not", async () => {
    const client = new OpenAI({ baseURL: `${fx.url}/v1`, apiKey: fx.key });
    for (const stream of [false, true]) {
      fx.demo.emulator.reset();
      cozeError(4028, "chat", { times: 5 });
      const err = await client.chat.completions
        .create({ model: "coze-echo", stream, messages: [{ role: "user", content: "hi" }] })
        .catch((e: unknown) => e);
      const api = err as InstanceType<typeof OpenAI.APIError>;
      expect([api.status, api.code], `stream ${stream}`).toEqual([403, "coze_quota_exceeded"]);
      expect(calls("chat"), `stream ${stream}`).toBe(1);
    }
  });

  it("end a read at once: no retry, no further poll", async () => {
    const wf = workflows("grpc");
    const asyncModel = `workflow-async:${catalog.workflows.slowAsync}`;
    const { executeId } = await wf.runWorkflow({
      model: asyncModel,
      mode: RunMode.ASYNC,
      parameters: { input: "x", polls: 5 },
    });
    cozeError(4011, "workflow.history", { times: 100 });
    const read = await rpcError(wf.getWorkflowRun({ model: asyncModel, executeId }));
    expect(read.code).toBe(Code.FailedPrecondition);
    expect(calls("workflow.history")).toBe(1);
    // Waiting for the run: the first poll meets the error, and polling ends there.
    const waited = await rpcError(
      wf.runWorkflow({ model: asyncModel, parameters: { input: "y", polls: 5 } }),
    );
    expect(waited.code).toBe(Code.FailedPrecondition);
    expect(waited.metadata.get("x-coze-execute-id")).toMatch(handed);
    expect(calls("workflow.history")).toBe(2);
  });

  it("keep their class when a run fails with them: streamed, and in run history", async () => {
    const failing = catalog.workflows.failing;
    const events = workflows("grpc").watchWorkflow({
      model: `workflow:${failing}`,
      parameters: { error_code: 4028 },
    });
    const streamed = await rpcError(
      (async () => {
        for await (const _ of events);
      })(),
    );
    expect(streamed.code).toBe(Code.ResourceExhausted);
    expect(streamed.metadata.get("x-gateway-error")).toBe("quota_exceeded");
    const res = await fetch(`${fx.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${fx.key}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: `workflow-async:${failing}`,
        messages: [{ role: "user", content: "x" }],
        parameters: { error_code: 4011 },
      }),
    });
    expect(res.status).toBe(402);
    const { error } = (await res.json()) as { error: Extra };
    expect(error).toMatchObject({ code: "coze_balance_insufficient" });
    expect(cozeIdOf(error.execute_id as string)).toMatch(/^\d{19}$/);
  });

  it("are labelled by class in the metrics", async () => {
    cozeError(4011, "workflow.run");
    expect((await complete()).status).toBe(402);
    cozeError(4013, "workflow.run");
    expect((await complete()).status).toBe(429);
    const text = await (await fetch(`${fx.url}/metrics`)).text();
    expect(text).toMatch(
      /coze_gateway_upstream_requests_total\{channel="demo",step="workflow\.run",outcome="balance_insufficient"\} [1-9]/,
    );
    expect(text).toMatch(
      /coze_gateway_upstream_requests_total\{channel="demo",step="workflow\.run",outcome="rate_limited"\} [1-9]/,
    );
    expect(text).toMatch(
      /coze_gateway_requests_total\{method="POST \/v1\/chat\/completions",code="402"\} [1-9]/,
    );
  });
});
