import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatMessageSchema, ChatService, Role } from "../src/gen/cozegateway/v1/chat_pb.js";
import { periodOf } from "../src/limits/index.js";
import { type Replicas, startReplicas, testKey } from "./support/limited-gateways.js";
import { createManualClock } from "./support/manual-clock.js";

// Issue 15 over gRPC and Connect: RESOURCE_EXHAUSTED with `retry-after` and OpenAI's
// `x-ratelimit-*` names as metadata, and the figures on every answer of a limited key.

const protocols = ["gRPC", "Connect"] as const;
let replicas: Replicas;
beforeAll(async () => {
  replicas = await startReplicas({
    count: 1,
    keys: protocols.flatMap((p) => [
      testKey(`rpm-${p}`, { requestsPerMinute: 2 }),
      testKey(`quota-${p}`, { quota: { tokens: 1, per: "month" } }),
    ]),
    limitsClock: createManualClock(periodOf("day", Date.now()).endMs + 3_600_000),
  });
});
afterAll(async () => {
  await replicas?.close();
});

function transport(protocol: (typeof protocols)[number], key: string): Transport {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
  const baseUrl = replicas.urls[0] ?? "";
  return protocol === "gRPC"
    ? createGrpcTransport({ baseUrl, interceptors: [auth] })
    : createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [auth] });
}

const hello = {
  model: "coze-echo",
  messages: [create(ChatMessageSchema, { role: Role.USER, content: "Hello" })],
};

/** The `x-ratelimit-*`, `retry-after` and `x-gateway-error` entries of headers or metadata. */
function figures(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (/^(x-ratelimit-|retry-after$|x-gateway-error$)/.test(name)) out[name] = value;
  });
  return out;
}

async function refusal(p: Promise<unknown>): Promise<ConnectError> {
  return p.then(
    () => expect.fail("the call succeeded"),
    (e: unknown) => ConnectError.from(e),
  );
}

describe.each(protocols)("limits over %s", (protocol) => {
  it("send the figures with each answer, then RESOURCE_EXHAUSTED with retry-after", async () => {
    const client = createClient(ChatService, transport(protocol, replicas.key(`rpm-${protocol}`)));
    let header = new Headers();
    await client.chat(hello, { onHeader: (h) => (header = h) });
    expect(figures(header)).toEqual({
      "x-ratelimit-limit-requests": "2",
      "x-ratelimit-remaining-requests": "1",
      "x-ratelimit-reset-requests": "30s",
    });
    // A server stream carries them in its headers too.
    let streamHeader = new Headers();
    for await (const _ of client.chatStream(hello, { onHeader: (h) => (streamHeader = h) }));
    expect(figures(streamHeader)).toMatchObject({ "x-ratelimit-remaining-requests": "0" });

    const err = await refusal(client.chat(hello));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toBe(
      "rate limit reached: 2 requests per minute for this API key; try again in 30s",
    );
    expect(figures(err.metadata)).toEqual({
      "retry-after": "30",
      "x-gateway-error": "rate_limit_exceeded",
      "x-ratelimit-limit-requests": "2",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1m0s",
    });
  });

  it("refuse a key whose quota is used up as insufficient_quota, and put figures on errors", async () => {
    const client = createClient(
      ChatService,
      transport(protocol, replicas.key(`quota-${protocol}`)),
    );
    // A failing call carries the figures in its metadata like a refusal does.
    const notFound = await refusal(client.chat({ ...hello, model: "nope" }));
    expect(notFound.code).toBe(Code.NotFound);
    expect(figures(notFound.metadata)).toMatchObject({
      "x-ratelimit-limit-tokens": "1",
      "x-ratelimit-remaining-tokens": "1",
    });
    await client.chat(hello);
    const err = await refusal(client.chat(hello));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(
      /^quota exhausted: 1 Coze tokens per month for this API key; it resets at \d{4}-\d\d-01T00:00:00\.000Z$/,
    );
    expect(figures(err.metadata)).toMatchObject({
      "x-gateway-error": "insufficient_quota",
      "x-ratelimit-remaining-tokens": "0",
    });
    expect(Number(err.metadata.get("retry-after"))).toBeGreaterThan(3600);
  });
});
