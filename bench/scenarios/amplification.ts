import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Agent, request } from "undici";
import { ChatMessageSchema, ChatService, Role } from "../../src/gen/cozegateway/v1/chat_pb.js";
import { type Bench, emulatorAdmin, emulatorStats } from "../lib/context.js";
import { sleep } from "../lib/proc.js";
import { restBody } from "./unary.js";

/** Upstream calls per client request, by kind of client request. */
export interface Amplification {
  requests: { rest: number; restStream: number; connect: number };
  /** Upstream calls by emulator endpoint (token requests included under `token`). */
  calls: Record<string, number>;
  /** Upstream calls (all endpoints but the token) per client request. */
  perRequest: number;
  /** Client requests that did not get the echo answer. */
  wrongAnswers: number;
}

/**
 * Waits until the upstream is quiet: no stream open and no new call for 500 ms. A load run that
 * just ended can still have calls on their way (the load generator cut them off mid-flight); they
 * must not be counted against this scenario's requests.
 */
async function settle(bench: Bench): Promise<void> {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    const stats = await emulatorStats(bench);
    const calls = Object.values(stats.calls).reduce((a, b) => a + b, 0);
    if (stats.openStreams === 0 && calls === last) return;
    last = calls;
    await sleep(500);
  }
}

async function pool(n: number, concurrency: number, task: (i: number) => Promise<boolean>) {
  let next = 0;
  let wrong = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        if (!(await task(i))) wrong++;
      }
    }),
  );
  return wrong;
}

/**
 * Counts, not times: with the emulator's counters zeroed, sends a fixed number of REST
 * non-stream, REST stream and Connect unary bot chats through the gateway (16 at a time) and
 * reads how many upstream calls they caused. 1.0 means one `/v3/chat` stream per chat and no
 * polling, no message list, no retries.
 */
export async function amplification(bench: Bench): Promise<Amplification> {
  const n = { rest: 400, restStream: 100, connect: 200 };
  await settle(bench);
  await emulatorAdmin(bench, "POST", "reset");
  const agent = new Agent({ connections: 16 });
  const url = `${bench.gateway.url}/v1/chat/completions`;
  const headers = { "content-type": "application/json", authorization: `Bearer ${bench.key}` };
  let wrong = await pool(n.rest, 16, async () => {
    const res = await request(url, { method: "POST", headers, body: restBody, dispatcher: agent });
    const json = (await res.body.json()) as { choices?: { message?: { content?: string } }[] };
    return res.statusCode === 200 && json.choices?.[0]?.message?.content === "You said: Hello";
  });
  const streamBody = JSON.stringify({ ...JSON.parse(restBody), stream: true });
  wrong += await pool(n.restStream, 16, async () => {
    const res = await request(url, {
      method: "POST",
      headers,
      body: streamBody,
      dispatcher: agent,
    });
    const text = await res.body.text();
    return res.statusCode === 200 && text.endsWith("data: [DONE]\n\n");
  });
  await agent.close();
  const chat = createClient(
    ChatService,
    createConnectTransport({
      baseUrl: bench.gateway.url,
      httpVersion: "2",
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${bench.key}`);
          return next(req);
        },
      ],
    }),
  );
  wrong += await pool(n.connect, 16, async () => {
    const r = await chat.chat({
      model: "coze-echo",
      messages: [create(ChatMessageSchema, { role: Role.USER, content: "Hello" })],
    });
    return r.answer === "You said: Hello";
  });
  const stats = await emulatorStats(bench);
  const total = n.rest + n.restStream + n.connect;
  const upstream = Object.entries(stats.calls)
    .filter(([k]) => k !== "token")
    .reduce((sum, [, v]) => sum + v, 0);
  return { requests: n, calls: stats.calls, perRequest: upstream / total, wrongAnswers: wrong };
}
