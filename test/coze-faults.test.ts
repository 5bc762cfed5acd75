import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CozeError } from "../src/coze/errors.js";
import { catalog } from "../src/emulator/index.js";
import { type CozeFixture, startCozeFixture } from "./support/coze-fixture.js";

const { bots, workflows } = catalog;
const hello = [{ role: "user" as const, content: "hello", contentType: "text" as const }];

async function failure(p: Promise<unknown>): Promise<CozeError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CozeError);
  return err as CozeError;
}

let fx: CozeFixture;
beforeAll(async () => {
  fx = await startCozeFixture({
    client: { streamIdleTimeoutMs: 300, headersTimeoutMs: 300 },
    tokens: { backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 } },
  });
});
afterEach(async () => {
  fx.emulator.faults.clear();
  await expect.poll(() => fx.emulator.stats().openStreams).toBe(0);
  fx.emulator.reset();
});
afterAll(async () => {
  await fx.close();
});

describe("the client under every fault the emulator injects", () => {
  it("5xx on a chat: a clear unavailable error, and the chat is not sent again", async () => {
    fx.emulator.faults.inject({ kind: "status", endpoint: "chat", status: 503, times: 1 });
    const err = await failure(
      fx.client.chat.chat({ botId: bots.echo, userId: "f", messages: hello }),
    );
    expect(err.code).toBe("unavailable");
    expect(err.step).toBe("chat.stream");
    expect(fx.emulator.stats().calls.chat).toBe(1);
  });

  it("429 with Retry-After: rate_limited, carrying the delay Coze asked for", async () => {
    fx.emulator.faults.inject({
      kind: "status",
      endpoint: "workflow.run",
      status: 429,
      times: 1,
      retryAfterSeconds: 3,
    });
    const err = await failure(
      fx.client.workflows.run({ workflowId: workflows.echo, parameters: { input: "x" } }),
    );
    expect(err.code).toBe("rate_limited");
    expect(err.retryAfterMs).toBe(3_000);
    expect(fx.emulator.stats().calls["workflow.run"]).toBe(1);
  });

  it("5xx while polling a run: retried with backoff, the run still completes", async () => {
    const { executeId } = await fx.client.workflows.start({
      workflowId: workflows.slowAsync,
      parameters: { input: "y", polls: 2 },
    });
    fx.emulator.faults.inject({
      kind: "status",
      endpoint: "workflow.history",
      status: 502,
      times: 2,
    });
    let last: string | undefined;
    for await (const tick of fx.client.workflows.watch(
      { workflowId: workflows.slowAsync, executeId },
      { intervalMs: 5, retry: { backoff: { initialMs: 5, maxMs: 10 } } },
    )) {
      last = tick.value.status;
    }
    expect(last).toBe("success");
    expect(fx.emulator.stats().calls["workflow.history"]).toBe(4);
  });

  it("connection reset mid-stream: an unavailable error after the deltas, never a finished chat", async () => {
    fx.emulator.faults.inject({ kind: "reset", endpoint: "chat", afterEvents: 3 });
    const seen: string[] = [];
    const err = await failure(
      (async () => {
        for await (const e of fx.client.chat.stream({
          botId: bots.echo,
          userId: "f",
          messages: hello,
        })) {
          seen.push(e.type);
        }
      })(),
    );
    expect(err.code).toBe("unavailable");
    // undici drops chunks the reader had not taken yet when the socket dies, so how many events
    // arrive varies; what never happens is a finished chat.
    expect(seen.length).toBeLessThanOrEqual(3);
    expect(seen).not.toContain("chat.completed");
    expect(seen).not.toContain("done");
  });

  it("connection reset before a unary answer: unavailable", async () => {
    fx.emulator.faults.inject({ kind: "reset", endpoint: "workflow.run", afterEvents: 0 });
    const err = await failure(
      fx.client.workflows.run({ workflowId: workflows.echo, parameters: { input: "x" } }),
    );
    expect(err.code).toBe("unavailable");
  });

  it("stalled stream: a timeout after the idle limit, and the connection is released", async () => {
    fx.emulator.faults.inject({ kind: "stall", endpoint: "workflow.stream_run", afterEvents: 1 });
    const started = Date.now();
    const err = await failure(
      (async () => {
        for await (const _ of fx.client.workflows.stream({
          workflowId: workflows.echo,
          parameters: { input: "stall" },
        })) {
          /* drain */
        }
      })(),
    );
    expect(err.code).toBe("timeout");
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("malformed SSE line: a protocol error", async () => {
    fx.emulator.faults.inject({ kind: "malformed", endpoint: "chat", afterEvents: 2 });
    const err = await failure(
      fx.client.chat.chat({ botId: bots.echo, userId: "f", messages: hello }),
    );
    expect(err.code).toBe("protocol");
  });

  it("slow response headers: a timeout at the configured limit", async () => {
    fx.emulator.faults.inject({ kind: "latency", endpoint: "workflow.run", ms: 2_000, times: 1 });
    const started = Date.now();
    const err = await failure(
      fx.client.workflows.run({ workflowId: workflows.echo, parameters: { input: "x" } }),
    );
    expect(err.code).toBe("timeout");
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it("token endpoint down: a token error, and a flood makes one token request per backoff", async () => {
    fx.tokens.clear();
    fx.emulator.faults.inject({ kind: "token_down" });
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () =>
        fx.client.workflows.run({ workflowId: workflows.echo, parameters: { input: "x" } }),
      ),
    );
    for (const r of results) {
      expect(r.status).toBe("rejected");
      const err = (r as PromiseRejectedResult).reason as CozeError;
      expect(err).toBeInstanceOf(CozeError);
      expect(err.step).toBe("token");
      expect(err.code).toBe("unavailable");
    }
    expect(fx.emulator.stats().tokenRequests).toBe(1);
    // Within the backoff window further calls fail fast without asking Coze again.
    for (let i = 0; i < 10; i++) {
      const err = await failure(
        fx.client.workflows.run({ workflowId: workflows.echo, parameters: { input: "x" } }),
      );
      expect(err.step).toBe("token");
    }
    expect(fx.emulator.stats().tokenRequests).toBe(1);
    expect(fx.emulator.stats().calls["workflow.run"] ?? 0).toBe(0);
    // After the backoff window the next call tries again and succeeds.
    fx.emulator.faults.clear();
    fx.clock.shift(61_000);
    const ok = await fx.client.workflows.run({
      workflowId: workflows.echo,
      parameters: { input: "z" },
    });
    expect(ok.output.value).toEqual({ output: "z" });
    expect(fx.emulator.stats().tokenRequests).toBe(2);
  });

  it("all tokens revoked: the call succeeds through one token refresh", async () => {
    await fx.client.workflows.run({ workflowId: workflows.echo, parameters: { input: "warm" } });
    const before = fx.emulator.stats().tokenRequests;
    fx.emulator.revokeAllTokens();
    const ok = await fx.client.workflows.run({
      workflowId: workflows.echo,
      parameters: { input: "a" },
    });
    expect(ok.output.value).toEqual({ output: "a" });
    expect(fx.emulator.stats().tokenRequests - before).toBe(1);
    expect(fx.emulator.stats().calls["workflow.run"]).toBe(3);
  });

  it("short-lived tokens: refreshed at half-life in the background, never used expired", async () => {
    fx.tokens.clear();
    fx.emulator.faults.inject({ kind: "short_tokens", lifetimeSeconds: 60 });
    await fx.client.workflows.run({ workflowId: workflows.echo, parameters: { input: "1" } });
    expect(fx.emulator.stats().tokenRequests).toBe(1);
    fx.clock.shift(40_000); // past half-life, before expiry: served, refreshed behind the scenes
    await fx.client.workflows.run({ workflowId: workflows.echo, parameters: { input: "2" } });
    await expect.poll(() => fx.emulator.stats().tokenRequests).toBe(2);
    fx.clock.shift(25_000); // the first token has expired by now; the refreshed one is fresh
    await fx.client.workflows.run({ workflowId: workflows.echo, parameters: { input: "3" } });
    expect(fx.emulator.stats().tokenRequests).toBe(2);
    expect(fx.emulator.stats().calls["workflow.run"]).toBe(3);
  });

  it("1000 concurrent calls on a cold cache make one token request", async () => {
    fx.tokens.clear();
    const signedBefore = fx.tokens.stats().jwtsSigned;
    // This suite's client has 300 ms timeouts for the fault tests; a herd of 1000 on a busy
    // 2-core machine needs ordinary ones.
    const client = fx.clientWith({ headersTimeoutMs: 30_000, streamIdleTimeoutMs: 30_000 });
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        client.workflows.run({ workflowId: workflows.echo, parameters: { input: String(i) } }),
      ),
    );
    expect(results[999]?.output.value).toEqual({ output: "999" });
    expect(fx.emulator.stats().tokenRequests).toBe(1);
    expect(fx.tokens.stats().jwtsSigned - signedBefore).toBe(1);
  });
});
