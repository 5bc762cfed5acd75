import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { promisify } from "node:util";
import fc from "fast-check";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Demo, startDemo } from "../src/demo.js";
import { catalog } from "../src/emulator/index.js";
import { type Gateway, startGateway } from "../src/gateway.js";
import { encodeToolCallId } from "../src/openai/index.js";

const bodyLimitBytes = 64 * 1024;
const heartbeatMs = 20;

/** A demo gateway with a small body limit and a fast heartbeat, like an operator could set. */
async function startShim(): Promise<{ demo: Demo; gateway: Gateway; close(): Promise<void> }> {
  const demo = await startDemo({ port: 0, deltaMs: 0, pollIntervalMs: 10 });
  demo.config.server.bodyLimitBytes = bodyLimitBytes;
  try {
    const gateway = await startGateway({ config: demo.config, openAiHeartbeatMs: heartbeatMs });
    return {
      demo,
      gateway,
      async close() {
        await gateway.close();
        await demo.close();
      },
    };
  } catch (err) {
    await demo.close();
    throw err;
  }
}

let shim: Awaited<ReturnType<typeof startShim>>;
let url: string;
beforeAll(async () => {
  shim = await startShim();
  url = `${shim.gateway.url}/v1/chat/completions`;
});
afterAll(async () => {
  await shim?.close();
});
beforeEach(() => shim.demo.emulator.reset());
afterEach(async () => {
  await expect.poll(() => shim.demo.emulator.stats().openStreams).toBe(0);
});

const auth = () => ({ authorization: `Bearer ${shim.demo.apiKey}` });
const post = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: "POST",
    headers: { ...auth(), "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
const user = (content: unknown) => ({ role: "user", content });

/** The `data:` payloads of an SSE body, and whether anything else but comments was in it. */
function events(text: string): string[] {
  expect(text.endsWith("\n\n")).toBe(true);
  return text
    .slice(0, -2)
    .split("\n\n")
    .filter((e) => !e.startsWith(":"))
    .map((e) => {
      expect(e.startsWith("data: ")).toBe(true);
      return e.slice("data: ".length);
    });
}

describe("malformed requests", () => {
  const toolId = encodeToolCallId({ conversationId: "1", chatId: "2", toolCallId: "3" });
  const cases: [string, unknown, string | null, Record<string, string>?][] = [
    ["invalid JSON", '{"model": "coze-echo",', null],
    ["a body that is not an object", "[1,2]", "body"],
    ["a missing model", { messages: [user("x")] }, "model"],
    ["a model of the wrong type", { model: 7, messages: [user("x")] }, "model"],
    ["an empty model", { model: "", messages: [user("x")] }, "model"],
    ["a model name of 300 characters", { model: "m".repeat(300), messages: [user("x")] }, "model"],
    ["missing messages", { model: "coze-echo" }, "messages"],
    ["messages that are not an array", { model: "coze-echo", messages: "hi" }, "messages"],
    ["empty messages", { model: "coze-echo", messages: [] }, "messages"],
    ["a message that is not an object", { model: "coze-echo", messages: ["hi"] }, "messages[0]"],
    [
      "a message without role",
      { model: "coze-echo", messages: [{ content: "x" }] },
      "messages[0].role",
    ],
    [
      "an unknown role",
      { model: "coze-echo", messages: [{ role: "wizard", content: "x" }] },
      "messages[0].role",
    ],
    [
      "content of the wrong type",
      { model: "coze-echo", messages: [user(5)] },
      "messages[0].content",
    ],
    [
      "a user message without content",
      { model: "coze-echo", messages: [{ role: "user" }] },
      "messages[0].content",
    ],
    [
      "a part that is not an object",
      { model: "coze-echo", messages: [user(["x"])] },
      "messages[0].content[0]",
    ],
    [
      "an input_audio part",
      {
        model: "coze-echo",
        messages: [
          user([
            { type: "text", text: "x" },
            { type: "input_audio", input_audio: {} },
          ]),
        ],
      },
      "messages[0].content[1].type",
    ],
    [
      "a file part",
      { model: "coze-echo", messages: [user([{ type: "file", file: {} }])] },
      "messages[0].content[0].type",
    ],
    [
      "an image in a system message",
      {
        model: "coze-echo",
        messages: [
          {
            role: "system",
            content: [{ type: "image_url", image_url: { url: "https://x.y/z.png" } }],
          },
          user("x"),
        ],
      },
      "messages[0].content[0].type",
    ],
    [
      "a text part without text",
      { model: "coze-echo", messages: [user([{ type: "text" }])] },
      "messages[0].content[0].text",
    ],
    [
      "an image part without url",
      { model: "coze-echo", messages: [user([{ type: "image_url", image_url: {} }])] },
      "messages[0].content[0].image_url.url",
    ],
    [
      "an unknown image detail",
      {
        model: "coze-echo",
        messages: [
          user([{ type: "image_url", image_url: { url: "https://x.y/z.png", detail: "ultra" } }]),
        ],
      },
      "messages[0].content[0].image_url.detail",
    ],
    [
      "an ftp image URL",
      {
        model: "coze-echo",
        messages: [user([{ type: "image_url", image_url: { url: "ftp://x.y/z.png" } }])],
      },
      "messages[0].content[0].image_url.url",
    ],
    [
      "a data URL that is not an image",
      {
        model: "coze-echo",
        messages: [
          user([{ type: "image_url", image_url: { url: "data:text/plain;base64,aGk=" } }]),
        ],
      },
      "messages[0].content[0].image_url.url",
    ],
    [
      "a data URL with broken base64",
      {
        model: "coze-echo",
        messages: [user([{ type: "image_url", image_url: { url: "data:image/png;base64,@@@" } }])],
      },
      "messages[0].content[0].image_url.url",
    ],
    [
      "stream of the wrong type",
      { model: "coze-echo", messages: [user("x")], stream: "yes" },
      "stream",
    ],
    [
      "stream_options.include_usage of the wrong type",
      {
        model: "coze-echo",
        messages: [user("x")],
        stream: true,
        stream_options: { include_usage: 1 },
      },
      "stream_options.include_usage",
    ],
    [
      "stream_options that are not an object",
      { model: "coze-echo", messages: [user("x")], stream_options: [] },
      "stream_options",
    ],
    ["n other than 1", { model: "coze-echo", messages: [user("x")], n: 2 }, "n"],
    [
      "a temperature that is not a number",
      { model: "coze-echo", messages: [user("x")], temperature: "hot" },
      "temperature",
    ],
    [
      "max_tokens that is not an integer",
      { model: "coze-echo", messages: [user("x")], max_tokens: 1.5 },
      "max_tokens",
    ],
    ["a user that is not a string", { model: "coze-echo", messages: [user("x")], user: 5 }, "user"],
    [
      "a tool message without tool_call_id",
      { model: "coze-tool", messages: [user("x"), { role: "tool", content: "y" }] },
      "messages[1].tool_call_id",
    ],
    [
      "a tool_call_id the gateway did not make",
      {
        model: "coze-tool",
        messages: [user("x"), { role: "tool", tool_call_id: "call_abc", content: "y" }],
      },
      "messages[1].tool_call_id",
    ],
    [
      "tool outputs of two different turns",
      {
        model: "coze-tool",
        messages: [
          user("x"),
          { role: "tool", tool_call_id: toolId, content: "y" },
          {
            role: "tool",
            tool_call_id: encodeToolCallId({ conversationId: "1", chatId: "9", toolCallId: "3" }),
            content: "z",
          },
        ],
      },
      "messages[2].tool_call_id",
    ],
    [
      "a conversation_id that is not an id",
      { model: "coze-echo", messages: [user("x")], conversation_id: "abc" },
      "conversation_id",
    ],
    [
      "an X-Coze-Conversation-Id that is not an id",
      { model: "coze-echo", messages: [user("x")] },
      "X-Coze-Conversation-Id",
      { "x-coze-conversation-id": "../etc" },
    ],
    [
      "parameters that are not an object",
      { model: "coze-echo", messages: [user("x")], parameters: [1] },
      "parameters",
    ],
    [
      "an event_id without interrupt_type",
      { model: `workflow:${catalog.workflows.interrupt}`, messages: [user("x")], event_id: "1/2" },
      "interrupt_type",
    ],
    [
      "a conversation that does not end with a user message",
      {
        model: "coze-echo",
        messages: [
          { role: "system", content: "s" },
          user("a"),
          { role: "assistant", content: "b" },
        ],
      },
      "messages[2].role",
    ],
    [
      "an empty user message after a skipped tool-call message",
      {
        model: "coze-echo",
        messages: [
          user("a"),
          { role: "assistant", content: null, tool_calls: [{ id: "c" }] },
          user(""),
        ],
      },
      "messages[2].content",
    ],
    [
      "an image sent to a workflow",
      {
        model: `workflow:${catalog.workflows.echo}`,
        messages: [
          user([
            { type: "text", text: "x" },
            { type: "image_url", image_url: { url: "https://x.y/z.png" } },
          ]),
        ],
      },
      "messages[0].content[1]",
    ],
    [
      "a workflow request without a user message or parameters",
      { model: `workflow:${catalog.workflows.echo}`, messages: [{ role: "system", content: "s" }] },
      "messages",
    ],
  ];

  it.each(cases)("answers 400 for %s, naming the field", async (_name, body, param, headers) => {
    for (const stream of [false, true]) {
      const b =
        typeof body === "object" && body !== null && !Array.isArray(body) && stream
          ? { ...body, stream: (body as { stream?: unknown }).stream ?? true }
          : body;
      const res = await post(b, headers);
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      const { error } = (await res.json()) as { error: Record<string, unknown> };
      expect(error.type).toBe("invalid_request_error");
      expect(error.param).toBe(param);
      expect(typeof error.message).toBe("string");
      if (param !== null) expect(error.message).toContain(param);
    }
    const stats = shim.demo.emulator.stats();
    expect(stats.chatsCreated + stats.workflowRunsStarted).toBe(0);
  });

  it("answers 404 for an unknown model and 405 for another method", async () => {
    const res = await post({ model: "gpt-4o", messages: [user("x")] });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("model_not_found");
    const get = await fetch(url, { headers: auth() });
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    await get.body?.cancel();
  });
});

describe("oversized bodies", () => {
  const big = JSON.stringify({ model: "coze-echo", messages: [user("x".repeat(bodyLimitBytes))] });

  it("answers 413 for a body over the limit with a Content-Length", async () => {
    const res = await post(big);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
      "request_too_large",
    );
  });

  it("answers 413 for a chunked body over the limit, and keeps serving", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(url, { method: "POST", headers: auth(), agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      // No Content-Length: node:http sends the body chunked.
      req.write(big.slice(0, 1000));
      req.end(big.slice(1000));
    });
    expect(status).toBe(413);
    const ok = await post({ model: "coze-echo", messages: [user("still here")] });
    expect(ok.status).toBe(200);
    await ok.body?.cancel();
  });
});

describe("the channel that served a turn", () => {
  it("is named in x-gateway-channel on an answer, and on a failure after the channel took it", async () => {
    const ok = await post({ model: "coze-echo", messages: [user("x")] });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-gateway-channel")).toBe("demo");
    // The stream opened on the channel, then broke: an error, and the channel it broke on.
    shim.demo.emulator.faults.inject({ kind: "reset", endpoint: "chat", afterEvents: 4 });
    const cut = await post({ model: "coze-echo", messages: [user("one two three four five")] });
    expect(cut.status).toBe(503);
    expect(((await cut.json()) as { error: unknown }).error).toMatchObject({ code: "unavailable" });
    expect(cut.headers.get("x-gateway-channel")).toBe("demo");
    // The chat that was cut is canceled upstream (best effort, after the answer).
    await expect.poll(() => shim.demo.emulator.stats().calls["chat.cancel"] ?? 0).toBe(1);
    // Refused before any channel took it: no channel to name.
    const unknown = await post({ model: "no-such-model", messages: [user("x")] });
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get("x-gateway-channel")).toBeNull();
  });
});

describe("unknown paths", () => {
  it("answers an unknown path under /v1 with an OpenAI 404 that names what is served", async () => {
    const res = await fetch(`${shim.gateway.url}/v1/embeddings?x=1`, {
      method: "POST",
      headers: { ...auth(), "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: {
        message:
          'unknown path "/v1/embeddings"; this API serves POST /v1/chat/completions, POST /v1/responses, GET /v1/models, GET /v1/models/{id}, GET /v1/workflow_runs/{execute_id}, POST /v1/audio/speech, POST /v1/audio/transcriptions, GET /v1/audio/voices, GET /v1/dashboard/billing/subscription and GET /v1/dashboard/billing/usage',
        type: "invalid_request_error",
        code: "not_found",
        param: null,
      },
    });
  });
});

describe("streams over raw HTTP", () => {
  it("ends a stream that fails upstream midway with an error event and no [DONE]", async () => {
    shim.demo.emulator.faults.inject({ kind: "reset", endpoint: "chat", afterEvents: 4 });
    const res = await post({
      model: "coze-echo",
      stream: true,
      messages: [user("one two three four five")],
    });
    expect(res.status).toBe(200);
    const data = events(await res.text());
    expect(JSON.parse(data[0] as string).choices[0].delta.role).toBe("assistant");
    expect(data.some((d) => d.includes('"content":"You'))).toBe(true);
    expect(data).not.toContain("[DONE]");
    const last = JSON.parse(data.at(-1) as string);
    expect(last.error).toMatchObject({ type: "server_error", code: "unavailable" });
    expect(data.some((d) => d.includes('"finish_reason":"stop"'))).toBe(false);
    // The chat that was cut is canceled upstream (best effort, after the answer).
    await expect.poll(() => shim.demo.emulator.stats().calls["chat.cancel"] ?? 0).toBe(1);
  });

  it("cancels the Coze chat when the client disconnects, even while Coze is silent", async () => {
    // Coze stops sending after the first delta: only the client's disconnect can end the call.
    shim.demo.emulator.faults.inject({ kind: "stall", endpoint: "chat", afterEvents: 3 });
    const controller = new AbortController();
    const res = await fetch(url, {
      method: "POST",
      headers: { ...auth(), "content-type": "application/json" },
      body: JSON.stringify({ model: "coze-echo", stream: true, messages: [user("wait for it")] }),
      signal: controller.signal,
    });
    try {
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let text = "";
      while (!text.includes('"content":"')) {
        const { value } = await reader.read();
        text += new TextDecoder().decode(value);
      }
      expect(shim.demo.emulator.stats().calls["chat.cancel"] ?? 0).toBe(0);
    } finally {
      controller.abort();
    }
    await expect.poll(() => shim.demo.emulator.stats().calls["chat.cancel"] ?? 0).toBe(1);
  });

  it("sends a progress comment per poll while an async workflow runs, then the output", async () => {
    const res = await post({
      model: `workflow-async:${catalog.workflows.slowAsync}`,
      stream: true,
      messages: [user("x")],
      parameters: { input: "slow", polls: 30 },
    });
    const text = await res.text();
    const role = text.indexOf('"role":"assistant"');
    const output = text.indexOf('"content":"{');
    const between = text.slice(role, output);
    expect(role).toBeGreaterThan(-1);
    // Each poll is a comment the connection stays alive on, saying how far the run got.
    const progress = [...between.matchAll(/^: progress (\{.*\})$/gm)].map((m) =>
      JSON.parse(m[1] as string),
    );
    expect(progress.length).toBeGreaterThanOrEqual(2);
    const polls = progress.map((p) => p.polls as number);
    expect(polls).toEqual(polls.map((_, i) => (polls[0] as number) + i));
    expect(progress.at(-2)).toMatchObject({ status: "running" });
    expect(progress.at(-1)).toMatchObject({ status: "succeeded", polls: 30 });
    const data = events(text);
    expect(data.at(-1)).toBe("[DONE]");
    // Progress is never content: one content chunk, the output.
    expect(data.filter((d) => d.includes('"content":"') && !d.includes('"role"'))).toHaveLength(1);
  });

  it("ends open streams on shutdown with an error event and no [DONE]", async () => {
    const own = await startShim();
    const res = await fetch(`${own.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${own.demo.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: `bot:${catalog.bots.slow}`,
        stream: true,
        messages: [user("z")],
      }),
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const { value } = await reader.read();
    let text = new TextDecoder().decode(value);
    const closed = own.close();
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      text += new TextDecoder().decode(r.value);
    }
    await closed;
    const data = events(text);
    expect(data).not.toContain("[DONE]");
    expect(JSON.parse(data.at(-1) as string).error).toMatchObject({
      message: "server is shutting down",
      code: "unavailable",
    });
  });
});

describe("property-based input (fast-check)", () => {
  // Whatever the body, the answer is a 4xx with an OpenAI error, never a 5xx, and the gateway
  // keeps serving. fast-check shrinks a failing body to a minimal one and prints its seed.
  const template = {
    model: "fuzz-model",
    stream: false,
    messages: [
      { role: "system", content: "s" },
      {
        role: "user",
        content: [
          { type: "text", text: "t" },
          { type: "image_url", image_url: { url: "https://x.y/i.png" } },
        ],
      },
      { role: "assistant", content: null, tool_calls: [] },
      { role: "tool", tool_call_id: "call_x", content: "o" },
    ],
  };
  /** Every path into the template, so any field can be replaced by anything. */
  function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
    if (value === null || typeof value !== "object") return [prefix];
    const entries = Array.isArray(value)
      ? value.map((v, i) => [i, v] as const)
      : Object.entries(value);
    return [prefix, ...entries.flatMap(([k, v]) => paths(v, [...prefix, k]))];
  }
  function replaced(path: (string | number)[], replacement: unknown): unknown {
    if (path.length === 0) return replacement;
    const copy = structuredClone(template) as Record<string | number, unknown>;
    let node = copy;
    for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
    node[path.at(-1) as string | number] = replacement;
    return copy;
  }
  // Values that OpenAI bodies are made of, plus the awkward ones.
  const awkward = fc.constantFrom(
    "user",
    "assistant",
    "tool",
    "system",
    "developer",
    "text",
    "image_url",
    "input_audio",
    "call_",
    "call_WyIxIl0",
    "data:image/png;base64,",
    "data:image/png;base64,AAAA",
    "https://x.y/z.png",
    "ftp://x",
    "\u0000",
    "\ud800",
    "9".repeat(40),
    "__proto__",
    "constructor",
  );
  const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 3 }), awkward);
  const body = fc.oneof(
    anyValue.map((v) => JSON.stringify(v) ?? "null"),
    fc
      .tuple(fc.constantFrom(...paths(template)), anyValue, fc.boolean())
      .map(([path, v, stream]) => JSON.stringify({ ...(replaced(path, v) as object), stream })),
    fc.string({ maxLength: 200 }), // not JSON at all, mostly
  );

  it("answers any body with a 4xx and an OpenAI error, never a 5xx, and still serves", async () => {
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        const res = await post(text);
        statuses.add(res.status);
        const reply = await res.text();
        expect(res.status, reply).toBeGreaterThanOrEqual(400);
        expect(res.status, reply).toBeLessThan(500);
        expect(JSON.parse(reply).error.message).toEqual(expect.any(String));
      }),
      { numRuns: 300 },
    );
    expect(statuses.has(400)).toBe(true);
    const ok = await post({ model: "coze-echo", messages: [user("alive")] });
    expect(
      ((await ok.json()) as { choices: { message: { content: string } }[] }).choices[0]?.message
        .content,
    ).toBe("You said: alive");
  });
});

describe("the README's OpenAI-compatible examples", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.split("## OpenAI-compatible REST")[1]?.split("\n## ")[0] ?? "";
  const blocks = () =>
    [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({
      lang: m[1],
      code: (m[2] ?? "").replaceAll("http://127.0.0.1:8080", shim.gateway.url),
    }));

  it("has curl commands that work in demo mode", async () => {
    const commands = blocks()
      .filter((b) => b.lang === "sh")
      .flatMap((b) => b.code.replace(/\\\n\s*/g, "").split("\n"))
      .filter((line) => line.startsWith("curl ") && !line.includes("/v1/responses"));
    // The Responses API's curls are run by docs.test.ts.
    expect(commands).toHaveLength(3);
    const run = async (command: string) =>
      (
        await promisify(execFile)("sh", ["-c", command], {
          env: { PATH: process.env.PATH, KEY: shim.demo.apiKey },
        })
      ).stdout;
    const reply = JSON.parse(await run(commands[0] as string));
    expect(reply.choices[0].message.content).toBe("You said: Hello");
    const streamed = events(await run(commands[1] as string));
    expect(streamed.at(-1)).toBe("[DONE]");
    const text = streamed
      .slice(0, -1)
      .map((d) => JSON.parse(d).choices[0]?.delta.content ?? "")
      .join("");
    expect(text).toBe("hi");
    const models = JSON.parse(await run(commands[2] as string));
    expect(models.data.map((m: { id: string }) => m.id)).toContain("coze-echo");
  });

  it("has an OpenAI SDK example that works in demo mode", async () => {
    const js = blocks().find((b) => b.lang === "js")?.code ?? "";
    expect(js).toContain('import OpenAI from "openai";');
    const printed: string[] = [];
    const fakeProcess = {
      env: { KEY: shim.demo.apiKey },
      stdout: { write: (t: string) => printed.push(t) },
    };
    const fakeConsole = { log: (t: string) => printed.push(`${t}\n`) };
    const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
    const program = new AsyncFunction(
      "OpenAI",
      "process",
      "console",
      js.replace('import OpenAI from "openai";', ""),
    );
    await program(OpenAI, fakeProcess, fakeConsole);
    expect(printed.join("")).toBe("You said: Hello\nhi");
  });
});
