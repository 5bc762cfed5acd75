import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Demo, demoModels, startDemo } from "../src/demo.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { within } from "./support/raw-http.js";
import { startUsageTap, type UsageTap } from "./support/usage-tap.js";

// Issue 16 "Operators": new-api kept for its billing, one of its OpenAI channels pointed at the
// gateway (docs/migration-new-api.md). These are the requests its OpenAI channel makes
// (relay/channel/openai/adaptor.go, relay/channel/api_request.go, relay/relay-text.go): Go's
// net/http client on HTTP/1.1, the headers in the order it writes them, `Accept` and
// `Content-Type` copied from new-api's caller (`text/event-stream` when a stream came without
// one), the channel key as bearer, Go's own `Accept-Encoding: gzip`; the body is its
// GeneralOpenAIRequest marshalled with omitempty, so only the fields the caller set, and for a
// stream on an OpenAI-type channel `stream_options: {include_usage: true}` (FORCE_STREAM_OPTION,
// on by default). new-api bills from the `usage` of the JSON answer, or of the last `data:`
// chunk before `[DONE]`; without one it estimates from the text. The answer must carry Coze's.

let demo: Demo;
let tap: UsageTap;
let gateway: Gateway;

beforeAll(async () => {
  demo = await startDemo({ port: 0, deltaMs: 0, pollIntervalMs: 10 });
  tap = await startUsageTap(demo.emulator.url);
  const [channel] = demo.config.channels;
  if (channel === undefined) throw new Error("the demo has a channel");
  (channel as { baseUrl: string }).baseUrl = tap.url;
  gateway = await startGateway({ config: demo.config });
});
afterAll(async () => {
  await gateway?.close();
  await tap?.close();
  await demo?.close();
});

/** What new-api's Go client writes for a body and the caller's `Accept`, byte for byte. */
function goRequest(port: number, key: string, body: string, accept: string): string {
  return [
    "POST /v1/chat/completions HTTP/1.1",
    `Host: 127.0.0.1:${port}`,
    "User-Agent: Go-http-client/1.1",
    `Content-Length: ${Buffer.byteLength(body)}`,
    `Accept: ${accept}`,
    `Authorization: Bearer ${key}`,
    "Content-Type: application/json",
    "Accept-Encoding: gzip",
    "",
    body,
  ].join("\r\n");
}

/** Sends `raw` on a new connection; resolves with the status, headers and (de-chunked) body. */
async function send(
  port: number,
  raw: string,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const socket = connect(port, "127.0.0.1");
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    socket.on("data", (c) => {
      chunks.push(c);
      const text = Buffer.concat(chunks).toString("utf8");
      const end = text.indexOf("\r\n\r\n");
      if (end === -1) return;
      const head = text.slice(0, end).toLowerCase();
      const rest = text.slice(end + 4);
      const length = /\r\ncontent-length: (\d+)/.exec(head)?.[1];
      if (
        length !== undefined
          ? Buffer.byteLength(rest) >= Number(length)
          : rest.endsWith("0\r\n\r\n")
      ) {
        resolve();
      }
    });
    socket.on("error", reject);
    socket.on("close", () => resolve());
  });
  socket.write(raw);
  await within(done, 10_000, "the gateway's answer");
  socket.destroy();
  const text = Buffer.concat(chunks).toString("utf8");
  const end = text.indexOf("\r\n\r\n");
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = text.slice(end + 4);
  if (headers["transfer-encoding"] === "chunked") body = dechunk(body);
  return { status: Number(statusLine.split(" ")[1]), headers, body };
}

function dechunk(text: string): string {
  let out = "";
  let at = 0;
  for (let i = 0; i < 100_000; i++) {
    const lineEnd = text.indexOf("\r\n", at);
    const size = Number.parseInt(text.slice(at, lineEnd), 16);
    if (!(size > 0)) return out;
    const start = lineEnd + 2;
    // Sizes count bytes: slice bytes, not UTF-16 units.
    const bytes = Buffer.from(text.slice(start), "utf8").subarray(0, size).toString("utf8");
    out += bytes;
    at = start + bytes.length + 2;
  }
  throw new Error("too many chunks");
}

/** What new-api reads of a stream: the `data:` payloads up to `[DONE]`, as its scanner does. */
function streamData(body: string): { items: string[]; done: boolean } {
  const items: string[] = [];
  for (const line of body.split("\n")) {
    const data = line.replace(/\r$/, "");
    if (data.length < 6) continue;
    if (data.startsWith("[DONE]") || data.slice(5).trim() === "[DONE]")
      return { items, done: true };
    if (!data.startsWith("data:")) continue;
    items.push(data.slice(5).trim());
  }
  return { items, done: false };
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

const cases: [string, string][] = [
  ["a bot", demoModels.bot],
  ["a workflow", demoModels.workflow],
];

describe("new-api's OpenAI channel pointed at the gateway", () => {
  it.each(cases)("gets the usage Coze reported for %s, not streamed", async (_, model) => {
    const before = tap.totals();
    // Only what the caller set: Go's omitempty drops the rest.
    const body = JSON.stringify({
      model,
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: "say something billable" },
      ],
      max_tokens: 512,
      temperature: 0.7,
      user: "newapi-user-42",
    });
    const res = await send(
      gateway.port,
      goRequest(gateway.port, demo.apiKey, body, "application/json"),
    );
    expect(res.status).toBe(200);
    expect(res.headers["content-encoding"]).toBeUndefined();
    const answer = JSON.parse(res.body) as { usage: Usage; choices: unknown[]; model: string };
    expect(answer.model).toBe(model);
    expect(answer.choices).toHaveLength(1);
    const after = tap.totals();
    expect(answer.usage).toEqual({
      prompt_tokens: after.prompt - before.prompt,
      completion_tokens: after.completion - before.completion,
      total_tokens: after.prompt - before.prompt + after.completion - before.completion,
    });
    expect(answer.usage.prompt_tokens).toBeGreaterThan(0);
  });

  it.each(cases)(
    "gets the usage Coze reported for %s in the last chunk before [DONE], streamed",
    async (_, model) => {
      const before = tap.totals();
      const body = JSON.stringify({
        model,
        messages: [{ role: "user", content: "stream something billable" }],
        stream: true,
        stream_options: { include_usage: true },
      });
      // The caller sent no Accept: new-api asks for an event stream.
      const res = await send(
        gateway.port,
        goRequest(gateway.port, demo.apiKey, body, "text/event-stream"),
      );
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toMatch(/^text\/event-stream/);
      const { items, done } = streamData(res.body);
      expect(done).toBe(true);
      // Every chunk parses, as new-api's handler decodes the last one and counts the others.
      const chunks = items.map(
        (d) => JSON.parse(d) as { usage?: Usage | null; choices: unknown[] },
      );
      const last = chunks.at(-1);
      const after = tap.totals();
      expect(last?.usage).toEqual({
        prompt_tokens: after.prompt - before.prompt,
        completion_tokens: after.completion - before.completion,
        total_tokens: after.prompt - before.prompt + after.completion - before.completion,
      });
      expect(last?.usage?.completion_tokens).toBeGreaterThan(0);
      // The finish chunk comes before it, so new-api forwards both to its own caller.
      const finish = chunks.find((c) =>
        (c.choices as { finish_reason?: string | null }[]).some((x) => x.finish_reason),
      );
      expect(finish).toBeDefined();
    },
  );
});
