// The official openai SDK in a web page, as LobeChat's client mode or any browser app runs it:
// Debian's Chromium (driven by playwright-core) loads a page from one 127.0.0.1 port and the SDK
// calls the gateway on another, so every call is cross-origin and goes through CORS.
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { build } from "esbuild";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Demo, demoModels, startDemo } from "../src/demo.js";
import { type Gateway, startGateway } from "../src/gateway.js";

const chromiumPath = "/usr/bin/chromium";
// Without the background-networking switches Chromium reaches for the internet at start. Other
// hosts are kept out by a proxy that is not there (loopback never goes through a proxy), not by
// playwright's request interception: with interception on, Chromium leaves the CORS preflight
// check to it, and a refusal the browser would make goes unseen.
const chromiumArgs = [
  "--proxy-server=http://127.0.0.1:9",
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const haveChromium = existsSync(chromiumPath);
// CI installs Chromium (.ci/run), so there a missing browser is a failure, not a skip.
const skipBrowser = !haveChromium && !process.env.CI;
if (skipBrowser) {
  console.warn(`test/browser-openai-sdk.test.ts: ${chromiumPath} is missing; skipped`);
}

/**
 * The page's script, bundled with the SDK for the browser. `window.callGateway` makes the calls
 * a browser app makes and returns what the app could read; an SDK error comes back as data.
 */
const pageScript = `
import OpenAI from "openai";

window.callGateway = async ({ baseURL, apiKey, model }) => {
  const client = new OpenAI({ baseURL, apiKey, dangerouslyAllowBrowser: true, maxRetries: 0 });
  const messages = [{ role: "user", content: "hello from the browser" }];
  try {
    const { data, response, request_id } = await client.chat.completions
      .create({ model, messages })
      .withResponse();
    const stream = await client.chat.completions.create({
      model,
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    let streamed = "";
    let chunks = 0;
    let usage = null;
    for await (const chunk of stream) {
      chunks += 1;
      streamed += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    const answer = await client.responses.create({ model, input: "hi" }).withResponse();
    return {
      completion: data.choices[0]?.message?.content,
      requestId: request_id,
      channel: response.headers.get("x-gateway-channel"),
      streamed,
      chunks,
      usage,
      response: answer.data.output_text,
      responseRequestId: answer.request_id,
    };
  } catch (err) {
    return { error: { name: err?.constructor?.name, status: err?.status, message: String(err?.message) } };
  }
};

window.callMissingModel = async ({ baseURL, apiKey }) => {
  const client = new OpenAI({ baseURL, apiKey, dangerouslyAllowBrowser: true, maxRetries: 0 });
  try {
    await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] });
    return { error: null };
  } catch (err) {
    return { error: { name: err?.constructor?.name, status: err?.status, code: err?.code, requestId: err?.requestID } };
  }
};
`;

/** A plain HTTP server on 127.0.0.1 serving the page and its bundled script: an origin of its own. */
async function startPageServer(script: string): Promise<{ server: Server; origin: string }> {
  const html = '<!doctype html><meta charset="utf-8"><script type="module" src="/app.js"></script>';
  const server = createServer((req, res) => {
    const [type, body] =
      req.url === "/app.js" ? ["text/javascript", script] : ["text/html; charset=utf-8", html];
    res.writeHead(200, { "content-type": type, "cache-control": "no-store" });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const closeServer = (server: Server | undefined) =>
  new Promise<void>((resolve) => {
    if (server === undefined) return resolve();
    server.closeAllConnections();
    server.close(() => resolve());
  });

interface Calls {
  completion?: string;
  requestId?: string | null;
  channel?: string | null;
  streamed?: string;
  chunks?: number;
  usage?: { total_tokens: number } | null;
  response?: string;
  responseRequestId?: string | null;
  error?: { name?: string; status?: number; message?: string } | null;
}

describe.skipIf(skipBrowser)("the openai SDK in headless Chromium, from another origin", () => {
  let demo: Demo;
  let gateway: Gateway;
  let allowedPage: { server: Server; origin: string } | undefined;
  let otherPage: { server: Server; origin: string } | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  /** Each request the browser started (a refused one too): where, and its headers. */
  const sent: { origin: string; method: string; path: string; headers: Record<string, string> }[] =
    [];
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`${chromiumPath} is missing: .ci/run installs chromium`);
    const bundle = await build({
      stdin: { contents: pageScript, resolveDir: process.cwd(), loader: "js" },
      bundle: true,
      platform: "browser",
      format: "esm",
      target: "es2022",
      write: false,
      logLevel: "silent",
    });
    const script = bundle.outputFiles[0]?.text ?? "";
    allowedPage = await startPageServer(script);
    otherPage = await startPageServer(script);
    demo = await startDemo({ port: 0, deltaMs: 0, pollIntervalMs: 10 });
    // Only the first page's origin may call; the second is any other site.
    demo.config.server.corsOrigins = [allowedPage.origin];
    demo.config.server.playground = false;
    gateway = await startGateway({ config: demo.config });
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: chromiumArgs,
      headless: true,
      timeout: 30_000,
    });
    context = await browser.newContext();
    context.on("request", (req) => {
      const url = new URL(req.url());
      sent.push({
        origin: url.origin,
        method: req.method(),
        path: url.pathname,
        headers: req.headers(),
      });
    });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await gateway?.close();
    await demo?.close();
    await closeServer(allowedPage?.server);
    await closeServer(otherPage?.server);
  });

  beforeEach(() => {
    sent.length = 0;
    consoleErrors.length = 0;
  });

  async function open(origin: string): Promise<Page> {
    if (context === undefined) throw new Error("no browser");
    const page = await context.newPage();
    page.on("console", (msg) => {
      if (msg.type() === "error") consoleErrors.push(msg.text());
    });
    await page.goto(`${origin}/`);
    await page.waitForFunction("typeof window.callGateway === 'function'");
    return page;
  }

  const args = (model: string) => ({ baseURL: `${gateway.url}/v1`, apiKey: demo.apiKey, model });

  it("chats, streams and answers a Responses call, and reads X-Request-Id and X-Gateway-Channel", async () => {
    const page = await open(allowedPage?.origin ?? "");
    const r = (await page.evaluate(
      `window.callGateway(${JSON.stringify(args(demoModels.bot))})`,
    )) as Calls;
    expect(r.error).toBeUndefined();
    expect(r.completion).toBe("You said: hello from the browser");
    expect(r.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.channel).toBe("demo");
    expect(r.streamed).toBe("You said: hello from the browser");
    expect(r.chunks).toBeGreaterThan(2);
    expect(r.usage?.total_tokens).toBeGreaterThan(0);
    expect(r.response).toBe("You said: hi");
    expect(r.responseRequestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.responseRequestId).not.toBe(r.requestId);
    // What needed the preflight's grant: the SDK's own headers went out with every call.
    const gatewayOrigin = new URL(gateway.url).origin;
    expect(new Set(sent.map((s) => s.origin))).toEqual(
      new Set([allowedPage?.origin, gatewayOrigin]),
    );
    const posts = sent.filter((s) => s.method === "POST");
    expect(posts.map((s) => s.path)).toEqual([
      "/v1/chat/completions",
      "/v1/chat/completions",
      "/v1/responses",
    ]);
    for (const post of posts) {
      expect(post.headers["x-stainless-os"]).toBeDefined();
      expect(post.headers.authorization).toBe(`Bearer ${demo.apiKey}`);
    }
    expect(consoleErrors).toEqual([]);
    await page.close();
  });

  it("runs a workflow model the same way", async () => {
    const page = await open(allowedPage?.origin ?? "");
    const r = (await page.evaluate(
      `window.callGateway(${JSON.stringify(args(demoModels.workflow))})`,
    )) as Calls;
    expect(r.error).toBeUndefined();
    expect(r.completion).toBe("hello from the browser");
    expect(r.response).toBe("hi");
    expect(r.requestId).toMatch(/^[0-9a-f-]{36}$/);
    await page.close();
  });

  it("lets the page read an error's status, code and request id", async () => {
    const page = await open(allowedPage?.origin ?? "");
    const r = (await page.evaluate(`window.callMissingModel(${JSON.stringify(args(""))})`)) as {
      error: { name: string; status: number; code: string; requestId: string };
    };
    expect(r.error).toMatchObject({ name: "NotFoundError", status: 404, code: "model_not_found" });
    expect(r.error.requestId).toMatch(/^[0-9a-f-]{36}$/);
    await page.close();
  });

  it("gives a page from an origin that is not allowed no grant: the SDK cannot reach the gateway", async () => {
    const chatsBefore = demo.emulator.stats().calls.chat ?? 0;
    const page = await open(otherPage?.origin ?? "");
    const r = (await page.evaluate(
      `window.callGateway(${JSON.stringify(args(demoModels.bot))})`,
    )) as Calls;
    expect(r.error).toMatchObject({ name: "APIConnectionError", status: undefined });
    // The preflight was refused, so the call itself never reached the gateway or Coze.
    expect(demo.emulator.stats().calls.chat ?? 0).toBe(chatsBefore);
    expect(consoleErrors.join("\n")).toMatch(/blocked by CORS policy/);
    await page.close();
  });
});
