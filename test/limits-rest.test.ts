import { connect as http2Connect } from "node:http2";
import OpenAI, { RateLimitError } from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { StateConfig } from "../src/config/index.js";
import { periodOf } from "../src/limits/index.js";
import {
  chat,
  limitHeaders,
  type Replicas,
  redisState,
  slowStream,
  startReplicas,
  testKey,
} from "./support/limited-gateways.js";
import { createManualClock } from "./support/manual-clock.js";
import { h2Request, rawConnect, within } from "./support/raw-http.js";
import {
  haveRedis,
  type RedisServer,
  redisSkipReason,
  startRedisServer,
} from "./support/redis-server.js";

// Issue 15 over the OpenAI-compatible REST doors: limits, figures on every answer, quotas with
// their reset, and the legacy billing endpoints, on the memory store and on Redis alike.

let redis: RedisServer | undefined;
beforeAll(async () => {
  if (haveRedis) redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.close();
});

let replicas: Replicas | undefined;
afterEach(async () => {
  await replicas?.close();
  replicas = undefined;
});

/** The stores to run on: memory, and Redis (skipped, saying why, where it is not installed). */
const stores: [string, () => StateConfig | undefined, boolean][] = [
  ["memory", () => undefined, true],
  ["redis", () => redisState(redis?.url ?? "", { timeoutMs: 2000 }), haveRedis],
];

/** One minute before the end of tomorrow (UTC): ahead of Redis's clock, a day end in sight. */
const beforeMidnight = () => periodOf("day", Date.now()).endMs + 86_400_000 - 60_000;

async function billing(url: string, key: string, what: "subscription" | "usage") {
  // What the OpenAI SDKs and the front-ends send: a GET with the bearer key.
  const res = await fetch(`${url}/v1/dashboard/billing/${what}`, {
    headers: { authorization: `Bearer ${key}` },
  });
  return { res, body: (await res.json()) as Record<string, unknown> };
}

async function totalTokens(res: Response): Promise<number> {
  return ((await res.json()) as { usage: { total_tokens: number } }).usage.total_tokens;
}

for (const [store, state, available] of stores) {
  describe.skipIf(!available)(
    `REST limits on the ${store} store${available ? "" : redisSkipReason}`,
    () => {
      it("lets exactly 10 of 30 requests through for a key with 10 requests per minute", async () => {
        replicas = await startReplicas({
          count: 1,
          keys: [testKey("ten", { requestsPerMinute: 10 })],
          state: state(),
          limitsClock: createManualClock(beforeMidnight()),
        });
        await replicas.ready(store);
        const [url = ""] = replicas.urls;
        const answers = await Promise.all(
          Array.from({ length: 30 }, () => chat(url, replicas?.key("ten") ?? "")),
        );
        await Promise.all(answers.map((r) => r.text()));
        expect(answers.filter((r) => r.status === 200)).toHaveLength(10);
        expect(answers.filter((r) => r.status === 429)).toHaveLength(20);
      });

      it("refuses a key over its quota until midnight UTC, and the billing endpoints tell", async () => {
        const clock = createManualClock(beforeMidnight());
        replicas = await startReplicas({
          count: 1,
          keys: [testKey("budget", { quota: { tokens: 30, per: "day" } })],
          state: state(),
          limitsClock: clock,
        });
        await replicas.ready(store);
        const [url = ""] = replicas.urls;
        const key = replicas.key("budget");
        expect((await billing(url, key, "subscription")).body).toEqual({
          object: "billing_subscription",
          has_payment_method: true,
          soft_limit_usd: 30,
          hard_limit_usd: 30,
          system_hard_limit_usd: 30,
          access_until: 0,
        });
        const first = await chat(url, key);
        expect(limitHeaders(first)).toEqual({
          "x-ratelimit-limit-tokens": "30",
          "x-ratelimit-remaining-tokens": "30",
          "x-ratelimit-reset-tokens": "1m0s",
        });
        const used = (await totalTokens(first)) + (await totalTokens(await chat(url, key)));
        expect(used).toBeGreaterThan(30);
        const refused = await chat(url, key);
        expect(refused.status).toBe(429);
        expect(limitHeaders(refused)).toEqual({
          "retry-after": "60",
          "x-ratelimit-limit-tokens": "30",
          "x-ratelimit-remaining-tokens": "0",
          "x-ratelimit-reset-tokens": "1m0s",
        });
        const midnight = new Date(periodOf("day", clock.now()).endMs).toISOString();
        expect(await refused.json()).toEqual({
          error: {
            message: `quota exhausted: 30 Coze tokens per day for this API key; it resets at ${midnight}`,
            type: "insufficient_quota",
            code: "insufficient_quota",
            param: null,
          },
        });
        // Reading the balance is never refused, and counts for nothing.
        const usage = await billing(url, key, "usage");
        expect(usage.res.status).toBe(200);
        expect(usage.body).toEqual({ object: "list", total_usage: used * 100 });
        expect(limitHeaders(usage.res)).toMatchObject({ "x-ratelimit-remaining-tokens": "0" });

        await clock.advance(60_000);
        const next = await chat(url, key);
        expect(next.status).toBe(200);
        const today = await totalTokens(next);
        expect((await billing(url, key, "usage")).body).toEqual({
          object: "list",
          total_usage: today * 100,
        });
      });
    },
  );
}

describe("REST limits", () => {
  it("put the figures on every answer of a limited key, and word refusals as OpenAI does", async () => {
    replicas = await startReplicas({
      count: 1,
      keys: [testKey("sdk", { requestsPerMinute: 3, tokensPerMinute: 1000 })],
      limitsClock: createManualClock(beforeMidnight()),
    });
    const [url = ""] = replicas.urls;
    const key = replicas.key("sdk");
    const first = await chat(url, key);
    expect(limitHeaders(first)).toEqual({
      "x-ratelimit-limit-requests": "3",
      "x-ratelimit-remaining-requests": "2",
      "x-ratelimit-reset-requests": "20s",
      "x-ratelimit-limit-tokens": "1000",
      "x-ratelimit-remaining-tokens": "1000",
      "x-ratelimit-reset-tokens": "0s",
    });
    const tokens = await totalTokens(first);
    // A failing request of the key carries them too: an unknown model.
    const unknown = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "nope", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(unknown.status).toBe(404);
    expect(limitHeaders(unknown)).toMatchObject({
      "x-ratelimit-remaining-requests": "1",
      "x-ratelimit-remaining-tokens": String(1000 - tokens),
    });
    await unknown.text();

    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
    const { response } = await client.chat.completions
      .create({ model: "coze-echo", messages: [{ role: "user", content: "Hello" }] })
      .withResponse();
    expect(response.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    const err = await client.chat.completions
      .create({ model: "coze-echo", messages: [{ role: "user", content: "Hello" }] })
      .then(
        () => expect.fail("not refused"),
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(RateLimitError);
    const limited = err as RateLimitError;
    expect([limited.status, limited.code, limited.type]).toEqual([
      429,
      "rate_limit_exceeded",
      "requests",
    ]);
    expect(limited.headers?.get("retry-after")).toBe("20");
    expect(limited.message).toContain("3 requests per minute for this API key; try again in 20s");
  });

  it("send the figures, the request id and the body's length once, over HTTP/1.1 and HTTP/2 alike", async () => {
    replicas = await startReplicas({
      count: 1,
      keys: [testKey("wire", { requestsPerMinute: 5 })],
      limitsClock: createManualClock(beforeMidnight()),
    });
    const [url = ""] = replicas.urls;
    const key = replicas.key("wire");
    const body = JSON.stringify({
      model: "coze-echo",
      messages: [{ role: "user", content: "hi" }],
    });
    // HTTP/1.1 below the clients: every header line as it went out.
    const conn = await rawConnect(Number(new URL(url).port));
    conn.socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${key}\r\n` +
        `content-type: application/json\r\ncontent-length: ${body.length}\r\n` +
        `x-request-id: wire-h1\r\nconnection: close\r\n\r\n${body}`,
    );
    await within(conn.closed, 10_000, "the HTTP/1.1 answer");
    const [head = "", answer = ""] = conn.received().toString("utf8").split("\r\n\r\n");
    const [status, ...lines] = head.toLowerCase().split("\r\n");
    expect(status).toBe("http/1.1 200 ok");
    const names = lines.map((l) => l.slice(0, l.indexOf(":")));
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
    expect(lines).toEqual(
      expect.arrayContaining([
        "x-request-id: wire-h1",
        "x-ratelimit-limit-requests: 5",
        "x-ratelimit-remaining-requests: 4",
        "content-type: application/json; charset=utf-8",
        `content-length: ${Buffer.byteLength(answer)}`,
      ]),
    );
    expect(JSON.parse(answer)).toMatchObject({ object: "chat.completion" });

    const session = http2Connect(url);
    try {
      const { headers, body: text } = await within(
        h2Request(
          session,
          {
            ":method": "POST",
            ":path": "/v1/chat/completions",
            authorization: `Bearer ${key}`,
            "content-type": "application/json",
            "x-request-id": "wire-h2",
          },
          body,
        ),
        10_000,
        "the HTTP/2 answer",
      );
      expect(headers).toMatchObject({
        ":status": 200,
        "x-request-id": "wire-h2",
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "3",
        "content-type": "application/json; charset=utf-8",
        "content-length": String(Buffer.byteLength(text)),
      });
      expect(JSON.parse(text)).toMatchObject({ object: "chat.completion" });
    } finally {
      session.close();
    }
  });

  it("refuses the next call once Coze's reported tokens pass tokens_per_minute", async () => {
    replicas = await startReplicas({
      count: 1,
      keys: [testKey("tpm", { tokensPerMinute: 20 })],
      limitsClock: createManualClock(beforeMidnight()),
    });
    const [url = ""] = replicas.urls;
    const key = replicas.key("tpm");
    const first = await totalTokens(await chat(url, key));
    expect(first).toBeLessThan(20);
    expect((await chat(url, key)).status).toBe(200);
    const refused = await chat(url, key);
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({
      error: { type: "tokens", code: "rate_limit_exceeded" },
    });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('coze_gateway_limit_refusals_total{limit="tokens"} 1');
  });

  it("serves each key its own usage only, an unlimited balance without a quota", async () => {
    replicas = await startReplicas({
      count: 1,
      keys: [testKey("ann", { requestsPerMinute: 1 }), testKey("ben")],
      limitsClock: createManualClock(beforeMidnight()),
    });
    const [url = ""] = replicas.urls;
    const ann = replicas.key("ann");
    const tokens = await totalTokens(await chat(url, ann));
    // Balance reads do not use up ann's one request per minute.
    for (let i = 0; i < 3; i++) {
      expect((await billing(url, ann, "usage")).body).toEqual({
        object: "list",
        total_usage: tokens * 100,
      });
    }
    expect((await chat(url, ann)).status).toBe(429);
    expect((await billing(url, replicas.key("ben"), "usage")).body.total_usage).toBe(0);
    expect((await billing(url, ann, "subscription")).body.hard_limit_usd).toBe(100_000_000);
    const unauthenticated = await fetch(`${url}/v1/dashboard/billing/usage`);
    expect(unauthenticated.status).toBe(401);
    const post = await fetch(`${url}/v1/dashboard/billing/usage`, {
      method: "POST",
      headers: { authorization: `Bearer ${ann}` },
    });
    expect([post.status, post.headers.get("allow")]).toEqual([405, "GET"]);
  });

  it("keeps a channel to max_concurrent calls to Coze, and says which limit refused", async () => {
    replicas = await startReplicas({
      count: 1,
      keys: [testKey("cap")],
      channelLimits: { maxConcurrent: 1, queue: 0, queueTimeoutMs: 30_000 },
    });
    const [url = ""] = replicas.urls;
    const key = replicas.key("cap");
    const slow = new AbortController();
    const open = await slowStream(url, key, slow.signal);
    expect(open.status).toBe(200);
    const busy = await chat(url, key);
    expect([busy.status, busy.headers.get("retry-after")]).toEqual([429, "1"]);
    expect(await busy.json()).toEqual({
      error: {
        message: "channel demo is busy: 1 calls to Coze in flight and 0 waiting; try again shortly",
        type: "rate_limit_error",
        code: "channel_busy",
        param: null,
      },
    });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('coze_gateway_limit_refusals_total{limit="channel"} 1');
    expect(metrics).toContain('coze_gateway_channel_calls{channel="demo",state="active"} 1');
    slow.abort();
    await open.body?.cancel().catch(() => {});
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      const res = await chat(url, key);
      status = res.status;
      await res.text();
      if (status !== 200) await new Promise((r) => setTimeout(r, 10));
    }
    expect(status).toBe(200);
  });

  it("keeps Coze's own rate limit apart from the gateway's, in code and metrics", async () => {
    replicas = await startReplicas({ count: 1, keys: [testKey("coze")] });
    const [url = ""] = replicas.urls;
    replicas.demo.emulator.faults.inject({
      kind: "status",
      endpoint: "chat",
      status: 429,
      times: 1,
      retryAfterSeconds: 2,
    });
    const res = await chat(url, replicas.key("coze"));
    expect([res.status, res.headers.get("retry-after")]).toEqual([429, "2"]);
    expect(await res.json()).toMatchObject({
      error: { type: "rate_limit_error", code: "coze_rate_limited" },
    });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).not.toContain("coze_gateway_limit_refusals_total{");
    expect(metrics).toMatch(/coze_gateway_upstream_requests_total\{[^}]*outcome="rate_limited"/);
  });
});
