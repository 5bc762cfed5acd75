import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { catalog } from "./catalog.js";
import { startEmulator } from "./server.js";
import { MALFORMED_LINE } from "./sse.js";
import { callApi, mintToken, parseSseFrames } from "./testing.js";
import type { Emulator, GeneratedApp } from "./types.js";

let emulator: Emulator;
let app: GeneratedApp;
let token: string;

beforeAll(async () => {
  emulator = await startEmulator({ timing: { slowDeltaMs: 5 } });
  app = await emulator.createApp();
  token = await mintToken(emulator, app);
});
afterEach(() => emulator.reset());
afterAll(() => emulator.close());

const chatBody = (bot: string = catalog.bots.echo) => ({
  bot_id: bot,
  user_id: "u",
  stream: true,
  additional_messages: [{ role: "user", content: "hello", content_type: "text" }],
});

/** Streams a POST and reads until the end or a failure; never throws. */
async function stream(path: string, body: unknown, signal?: AbortSignal) {
  let text = "";
  try {
    const res = await fetch(`${emulator.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      ...(signal ? { signal } : {}),
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    for (let r = await reader.read(); !r.done; r = await reader.read())
      text += decoder.decode(r.value, { stream: true });
    return { text, failed: false };
  } catch {
    return { text, failed: true };
  }
}

const eventsIn = (text: string) => text.split("\n\n").filter((b) => b.includes("data:")).length;

describe("API authentication", () => {
  it("answers a missing or unknown token with 4100, HTTP 401, JSON and the log id twice", async () => {
    for (const bearer of [undefined, "czs_unknown"]) {
      const reply = await callApi(emulator, bearer, "POST", "/v1/workflow/run", {
        workflow_id: catalog.workflows.echo,
      });
      expect(reply.status).toBe(401);
      expect(reply.headers.get("content-type")).toBe("application/json");
      expect(reply.json()).toEqual({
        code: 4100,
        msg: "authentication is invalid",
        detail: { logid: reply.headers.get("x-tt-logid") },
      });
    }
  });

  it("rejects revoked tokens until reset, while tokens minted afterwards work", async () => {
    emulator.revokeAllTokens();
    const revoked = await callApi(emulator, token, "POST", "/v1/workflow/run", {
      workflow_id: catalog.workflows.echo,
    });
    expect(revoked.json().code).toBe(4100);
    const fresh = await mintToken(emulator, app);
    expect(
      (
        await callApi(emulator, fresh, "POST", "/v1/workflow/run", {
          workflow_id: catalog.workflows.echo,
        })
      ).json().code,
    ).toBe(0);
    emulator.reset();
    expect(
      (
        await callApi(emulator, token, "POST", "/v1/workflow/run", {
          workflow_id: catalog.workflows.echo,
        })
      ).json().code,
    ).toBe(0);
  });

  it("expires tokens on the emulator clock, shortened by short_tokens, and can answer 4100 with HTTP 200", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    const emu = await startEmulator({ now: () => now, authErrorStatus: 200 });
    try {
      const own = await emu.createApp();
      const claims = { iat: Math.floor(now / 1000) };
      emu.faults.inject({ kind: "short_tokens", lifetimeSeconds: 2 });
      const short = await mintToken(emu, own, { claims, body: { duration_seconds: 3600 } });
      const use = (t: string) => callApi(emu, t, "GET", "/v1/files/retrieve?file_id=1");
      expect((await use(short)).json().code).toBe(4200); // authenticated: the file is just unknown
      now += 2000;
      const expired = await use(short);
      expect(expired.status).toBe(200);
      expect(expired.json().code).toBe(4100);
      emu.faults.clear();
      const normal = await mintToken(emu, own, { claims: { iat: Math.floor(now / 1000) } });
      now += 899_000;
      expect((await use(normal)).json().code).toBe(4200);
      now += 1000;
      expect((await use(normal)).json().code).toBe(4100);
    } finally {
      await emu.close();
    }
  });
});

describe("faults", () => {
  it("delays response headers with latency, for the named endpoint only, until cleared", async () => {
    emulator.faults.inject({ kind: "latency", endpoint: "workflow.run", ms: 60 });
    const timed = async (path: string, body: unknown) => {
      const start = performance.now();
      await callApi(emulator, token, "POST", path, body);
      return performance.now() - start;
    };
    expect(
      await timed("/v1/workflow/run", { workflow_id: catalog.workflows.echo }),
    ).toBeGreaterThanOrEqual(55);
    expect(
      await timed("/v1/workflow/run", { workflow_id: catalog.workflows.echo }),
    ).toBeGreaterThanOrEqual(55);
    expect(await timed("/v3/chat/cancel", {})).toBeLessThan(55);
    emulator.faults.clear();
    expect(await timed("/v1/workflow/run", { workflow_id: catalog.workflows.echo })).toBeLessThan(
      55,
    );
  });

  it("answers N calls with a status and a Coze error body, with Retry-After, then recovers", async () => {
    emulator.faults.inject({
      kind: "status",
      endpoint: "workflow.run",
      status: 429,
      times: 2,
      retryAfterSeconds: 3,
    });
    for (let i = 0; i < 2; i += 1) {
      const reply = await callApi(emulator, token, "POST", "/v1/workflow/run", {
        workflow_id: catalog.workflows.echo,
      });
      expect(reply.status).toBe(429);
      expect(reply.headers.get("retry-after")).toBe("3");
      expect(reply.json()).toMatchObject({ code: 4013, detail: { logid: expect.any(String) } });
    }
    expect(
      (
        await callApi(emulator, token, "POST", "/v1/workflow/run", {
          workflow_id: catalog.workflows.echo,
        })
      ).status,
    ).toBe(200);
    emulator.faults.inject({ kind: "status", status: 503, times: 1 });
    const blanket = await callApi(emulator, token, "GET", "/v1/files/retrieve?file_id=1");
    expect([blanket.status, blanket.json().code]).toEqual([503, 5000]);
  });

  it("keeps the token endpoint out of blanket faults, and token_down / status faults there speak OAuth", async () => {
    emulator.faults.inject({ kind: "status", status: 500, times: 5 });
    await expect(mintToken(emulator, app)).resolves.toMatch(/^czs_/);
    emulator.faults.clear();
    emulator.faults.inject({ kind: "token_down", times: 1 });
    const down = await mintToken(emulator, app).catch((e: Error) => e.message);
    expect(down).toContain('"error_code":"internal_error"');
    await expect(mintToken(emulator, app)).resolves.toMatch(/^czs_/);
    emulator.faults.inject({ kind: "status", endpoint: "token", status: 502, times: 1 });
    await expect(mintToken(emulator, app)).rejects.toThrow(/internal_error/);
  });

  it("resets the connection after K SSE events, once", async () => {
    emulator.faults.inject({ kind: "reset", endpoint: "chat", afterEvents: 2 });
    const cut = await stream("/v3/chat", chatBody());
    expect(cut.failed).toBe(true);
    expect(eventsIn(cut.text)).toBe(2);
    const whole = await stream("/v3/chat", chatBody());
    expect(whole.failed).toBe(false);
    expect(whole.text.endsWith('data:"[DONE]"\n\n')).toBe(true);
  });

  it("resets right after the headers with afterEvents 0, and before answering a non-stream call", async () => {
    emulator.faults.inject({ kind: "reset", endpoint: "workflow.stream_run", afterEvents: 0 });
    const cut = await stream("/v1/workflow/stream_run", { workflow_id: catalog.workflows.echo });
    expect([cut.failed, cut.text]).toEqual([true, ""]);
    emulator.faults.inject({ kind: "reset", endpoint: "workflow.run", afterEvents: 0 });
    await expect(
      callApi(emulator, token, "POST", "/v1/workflow/run", { workflow_id: catalog.workflows.echo }),
    ).rejects.toThrow();
  });

  it("writes one malformed line after K events and carries on", async () => {
    emulator.faults.inject({ kind: "malformed", endpoint: "workflow.stream_run", afterEvents: 1 });
    const { text, failed } = await stream("/v1/workflow/stream_run", {
      workflow_id: catalog.workflows.echo,
      parameters: { input: "m" },
    });
    expect(failed).toBe(false);
    const at = text.indexOf(MALFORMED_LINE);
    expect(eventsIn(text.slice(0, at))).toBe(1);
    expect(parseSseFrames(text.replace(MALFORMED_LINE, "")).at(-1)?.event).toBe("Done");
  });

  it("stalls after K events with the connection open until the client leaves", async () => {
    emulator.faults.inject({ kind: "stall", endpoint: "workflow.stream_run", afterEvents: 1 });
    const abort = new AbortController();
    const reading = stream(
      "/v1/workflow/stream_run",
      { workflow_id: catalog.workflows.echo },
      abort.signal,
    );
    await vi.waitFor(() => expect(emulator.stats().openStreams).toBe(1), { interval: 5 });
    await new Promise((r) => setTimeout(r, 30));
    expect(emulator.stats().openStreams).toBe(1);
    abort.abort();
    const { text, failed } = await reading;
    expect([failed, eventsIn(text)]).toEqual([true, 1]);
    await vi.waitFor(() => expect(emulator.stats().openStreams).toBe(0), { interval: 5 });
  });

  it("refuses malformed faults", () => {
    expect(() => emulator.faults.inject({ kind: "status", status: 503 } as never)).toThrow(
      TypeError,
    );
    expect(() =>
      emulator.faults.inject({ kind: "latency", ms: 1, endpoint: "nope" } as never),
    ).toThrow(TypeError);
    expect(() => emulator.faults.inject({ kind: "explode" } as never)).toThrow(TypeError);
  });
});

describe("stats and the admin surface", () => {
  it("counts calls, chats, runs and polls, and reset zeroes them", async () => {
    await stream("/v3/chat", chatBody());
    await callApi(emulator, token, "POST", "/v1/workflow/run", {
      workflow_id: catalog.workflows.echo,
    });
    await callApi(emulator, undefined, "POST", "/v1/workflow/run", {
      workflow_id: catalog.workflows.echo,
    });
    await callApi(emulator, token, "GET", "/v1/workflows/1/run_histories/42");
    const stats = emulator.stats();
    expect(stats.calls).toEqual({ chat: 1, "workflow.run": 2, "workflow.history": 1 });
    expect([
      stats.chatsCreated,
      stats.workflowRunsStarted,
      stats.polls["42"],
      stats.openStreams,
    ]).toEqual([1, 1, 1, 0]);
    emulator.reset();
    expect(emulator.stats()).toEqual({
      tokenRequests: 0,
      tokensIssued: 0,
      tokensBySession: {},
      calls: {},
      polls: {},
      openStreams: 0,
      chatsCreated: 0,
      chatsRunning: 0,
      workflowRunsStarted: 0,
    });
  });

  it("injects and clears faults, revokes, resets and reports stats over HTTP", async () => {
    const admin = (method: string, path: string, body?: unknown) =>
      fetch(`${emulator.url}/__emulator/${path}`, {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    expect(
      (
        await admin("POST", "faults", {
          kind: "status",
          endpoint: "workflow.run",
          status: 500,
          times: 1,
        })
      ).status,
    ).toBe(200);
    expect((await admin("POST", "faults", { kind: "bogus" })).status).toBe(400);
    expect(
      (
        await callApi(emulator, token, "POST", "/v1/workflow/run", {
          workflow_id: catalog.workflows.echo,
        })
      ).status,
    ).toBe(500);
    await admin("POST", "faults", { kind: "latency", ms: 5000 });
    await admin("DELETE", "faults");
    expect(
      (
        await callApi(emulator, token, "POST", "/v1/workflow/run", {
          workflow_id: catalog.workflows.echo,
        })
      ).status,
    ).toBe(200);
    expect(await (await admin("GET", "stats")).json()).toMatchObject({
      calls: { "workflow.run": 2 },
    });
    await admin("POST", "revoke");
    expect(
      (
        await callApi(emulator, token, "POST", "/v1/workflow/run", {
          workflow_id: catalog.workflows.echo,
        })
      ).status,
    ).toBe(401);
    await admin("POST", "reset");
    expect(await (await admin("GET", "stats")).json()).toMatchObject({ calls: {} });
    expect(
      (
        await callApi(emulator, token, "POST", "/v1/workflow/run", {
          workflow_id: catalog.workflows.echo,
        })
      ).status,
    ).toBe(200);
  });
});

describe("close", () => {
  it("ends stalled streams and pending sync runs promptly", async () => {
    const emu = await startEmulator();
    const own = await mintToken(emu, await emu.createApp());
    emu.faults.inject({ kind: "stall", endpoint: "chat", afterEvents: 1 });
    const stalled = fetch(`${emu.url}/v3/chat`, {
      method: "POST",
      headers: { authorization: `Bearer ${own}`, "content-type": "application/json" },
      body: JSON.stringify(chatBody()),
    }).then(
      (res) =>
        res.text().then(
          () => "complete",
          () => "cut",
        ),
      () => "cut",
    );
    const waiting = callApi(emu, own, "POST", "/v1/workflow/run", {
      workflow_id: catalog.workflows.slowAsync,
      parameters: { run_ms: 60_000 },
    }).then(
      () => "answered",
      () => "cut",
    );
    await vi.waitFor(() => expect(emu.stats().calls["workflow.run"]).toBe(1), { interval: 5 });
    const start = performance.now();
    await emu.close();
    expect(performance.now() - start).toBeLessThan(1000);
    expect(await stalled).toBe("cut");
    expect(await waiting).toBe("cut");
  });
});
