// The web playground end to end: the demo-mode gateway serves it, Debian's Chromium (driven by
// playwright-core) loads it, and the page calls the gateway over Connect-Web as a user would.
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Demo, demoModels, startDemo } from "../src/demo.js";
import { catalog } from "../src/emulator/index.js";
import { type Gateway, startGateway } from "../src/gateway.js";

const chromiumPath = "/usr/bin/chromium";
// Without the background-networking switches Chromium reaches for the internet at start.
const chromiumArgs = [
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
  console.warn(
    `test/browser.test.ts: ${chromiumPath} is missing, so the playground's browser tests are skipped (apt-get install chromium to run them)`,
  );
}

/** A demo-mode gateway in this process, on an ephemeral port. */
async function startDemoGateway(options: { playground: boolean; deltaMs?: number }) {
  // Paced stream events (as in demo mode), so the page can be seen growing an answer.
  const demo = await startDemo({ port: 0, deltaMs: options.deltaMs ?? 25, pollIntervalMs: 10 });
  demo.config.server.playground = options.playground;
  try {
    const gateway = await startGateway({
      config: demo.config,
      playgroundModels: Object.values(demoModels),
    });
    return { demo, gateway };
  } catch (err) {
    await demo.close();
    throw err;
  }
}

/**
 * Page script: records in `window.answerTexts` each text the latest chat answer shows, as the
 * page changes it (a string: this file is compiled without the DOM library).
 */
const recordAnswerTexts = `(() => {
  const seen = (window.answerTexts = []);
  const log = document.getElementById("chat-log");
  new MutationObserver(() => {
    const answers = log.querySelectorAll(".answer");
    const text = answers[answers.length - 1]?.textContent ?? "";
    if (text !== "" && seen[seen.length - 1] !== text) seen.push(text);
  }).observe(log, { childList: true, subtree: true, characterData: true });
})()`;

/** Sends `path` exactly as written (fetch would resolve `..` before sending). */
function rawGet(url: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the playground route", () => {
  it("is off unless the config enables it, and serves only its own files when on", async () => {
    const off = await startDemoGateway({ playground: false });
    try {
      expect((await fetch(`${off.gateway.url}/playground`)).status).toBe(404);
    } finally {
      await off.gateway.close();
      await off.demo.close();
    }
    const on = await startDemoGateway({ playground: true });
    try {
      const page = await fetch(`${on.gateway.url}/playground`);
      expect(page.status).toBe(200);
      expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(page.headers.get("content-security-policy")).toContain("connect-src 'self'");
      expect(await page.text()).toContain('<script type="module" src="/playground/app.js">');
      for (const path of [
        "/playground/../package.json",
        "/playground/%2e%2e/%2e%2e/package.json",
        "/playground/playground-handler.js",
      ]) {
        const res = await rawGet(on.gateway.url, path);
        expect(res.status, path).toBe(404);
        expect(res.body, path).not.toContain("coze-gateway");
      }
      // The page is public; the calls it makes are not.
      const models = await fetch(`${on.gateway.url}/cozegateway.v1.ModelService/ListModels`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(models.status).toBe(401);
    } finally {
      await on.gateway.close();
      await on.demo.close();
    }
  });
});

describe.skipIf(skipBrowser)("the playground in headless Chromium", () => {
  let demo: Demo;
  let gateway: Gateway;
  let context: BrowserContext | undefined;
  let profile: string | undefined;
  /** Every request the browser made, and its Authorization header. */
  const requests: { url: string; authorization: string | undefined }[] = [];
  /** Console errors and page errors (a CSP violation is one). */
  const problems: string[] = [];

  beforeAll(async () => {
    if (!haveChromium) {
      throw new Error(`${chromiumPath} is missing: .ci/run installs Debian's chromium package`);
    }
    ({ demo, gateway } = await startDemoGateway({ playground: true }));
    profile = await mkdtemp(join(tmpdir(), "coze-gateway-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      args: chromiumArgs,
      headless: true,
      viewport: { width: 1280, height: 900 },
      timeout: 30_000,
    });
    context.on("request", (req) => {
      requests.push({ url: req.url(), authorization: req.headers().authorization });
    });
    // Nothing but the gateway under test: any other address is refused on the spot.
    const origin = new URL(gateway.url).origin;
    await context.route(
      (url) => url.origin !== origin,
      (route) => route.abort("blockedbyclient"),
    );
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await gateway?.close();
    await demo?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  /** A new tab on the playground; with `key`, the key is entered and checked. */
  async function openPlayground(key?: string): Promise<Page> {
    if (context === undefined) throw new Error("no browser");
    const page = await context.newPage();
    page.on("console", (msg) => {
      if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
    });
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
    const res = await page.goto(`${gateway.url}/playground`);
    expect(res?.status()).toBe(200);
    if (key !== undefined) {
      await page.fill("#api-key", key);
      await page.click("#key-form button[type=submit]");
      await expect
        .poll(() => page.textContent("#key-status"))
        .not.toMatch(/^(Checking|Enter an API key)/);
    }
    return page;
  }

  /** The texts of the workflow event list, in order. */
  function workflowEvents(page: Page): Promise<string[]> {
    return page.locator("#workflow-events > li").allInnerTexts();
  }

  it("takes the key, keeps it out of the URL, and lists the models ListModels returns", async () => {
    const page = await openPlayground(demo.apiKey);
    // The demo's three configured bots, and what discovery found in the emulator's space: two
    // more bots, five workflows and a chatflow.
    await expect
      .poll(() => page.textContent("#key-status"))
      .toMatch(/^Key accepted: 3 configured and 8 discovered model\(s\)/);
    const options = await page
      .locator("#chat-model option")
      .evaluateAll((list) => list.map((o) => [o.getAttribute("value"), o.textContent]));
    expect(options).toEqual([
      [demoModels.bot, `Echo (${demoModels.bot})`],
      [demoModels.reasoning, `Reasoning echo (${demoModels.reasoning})`],
      [demoModels.tool, `Weather tool (${demoModels.tool})`],
      [`bot:${catalog.bots.failing}`, `Failing bot (bot:${catalog.bots.failing})`],
      [`bot:${catalog.bots.slow}`, `Slow talker (bot:${catalog.bots.slow})`],
      [demoModels.chatflow, `echo_chatflow (${demoModels.chatflow})`],
    ]);
    // Coze's description shows on hover.
    expect(await page.locator("#chat-model option").first().getAttribute("title")).toBe(
      "Repeats what you say.",
    );
    const workflows = await page
      .locator("#workflow-models option")
      .evaluateAll((list) => list.map((o) => o.getAttribute("value")));
    expect(workflows).toEqual([
      demoModels.workflow,
      `workflow:${catalog.workflows.slowAsync}`,
      demoModels.interrupt,
      `workflow:${catalog.workflows.failing}`,
      `workflow:${catalog.workflows.large}`,
      // Not listed (async runs are a dynamic name of their own), but suggested.
      demoModels.workflowAsync,
    ]);
    expect(page.url()).toBe(`${gateway.url}/playground`);
    expect(await page.evaluate('sessionStorage.getItem("coze-gateway.playground.api-key")')).toBe(
      demo.apiKey,
    );
    expect(await page.evaluate("localStorage.length")).toBe(0);
    await page.close();
  });

  it("streams a chat answer into the page as the deltas arrive", async () => {
    const page = await openPlayground(demo.apiKey);
    await page.selectOption("#chat-model", demoModels.bot);
    await page.fill("#chat-message", "hello from the browser");
    // Record every text the answer shows, from the first delta on.
    await page.evaluate(recordAnswerTexts);
    await page.click("#chat-send");
    const answer = page.locator("#chat-log .answer").last();
    await expect.poll(() => page.locator("#chat-log .meta").last().textContent()).toMatch(/^Done/);
    expect(await answer.textContent()).toBe("You said: hello from the browser");
    const texts = (await page.evaluate("window.answerTexts")) as string[];
    expect(texts.length).toBeGreaterThanOrEqual(3);
    expect(texts.at(-1)).toBe("You said: hello from the browser");
    for (const text of texts)
      expect("You said: hello from the browser".startsWith(text)).toBe(true);
    expect(await page.textContent("#chat-log .turn-user .content")).toBe("hello from the browser");
    expect(await page.isVisible("#chat-log .reasoning")).toBe(false);
    expect(await page.textContent("#chat-error")).toBe("");
    await page.close();
  });

  it("shows a reasoning model's reasoning apart from its answer", async () => {
    const page = await openPlayground(demo.apiKey);
    await page.selectOption("#chat-model", demoModels.reasoning);
    await page.fill("#chat-message", "why");
    await page.click("#chat-send");
    await expect.poll(() => page.locator("#chat-log .meta").last().textContent()).toMatch(/^Done/);
    expect(await page.isVisible("#chat-log .reasoning")).toBe(true);
    expect(await page.textContent("#chat-log .reasoning-text")).toMatch(/^The user wrote "why"/);
    expect(await page.textContent("#chat-log .answer")).toBe("You said: why");
    await page.close();
  });

  it("runs a workflow and lists its live events, ending with the output", async () => {
    const page = await openPlayground(demo.apiKey);
    await page.fill("#workflow-target", `workflow:${catalog.workflows.echo}`);
    await page.fill("#workflow-params", '{"input":"x"}');
    await page.click("#workflow-run");
    await page.waitForSelector("#workflow-events .event-result");
    const events = await workflowEvents(page);
    expect(events[0]).toMatch(/^Node · Message\s+You said: x$/i);
    expect(events.at(-2)).toMatch(/^Node · End\s+\{"output":"x"\}$/i);
    expect(events.at(-1)).toMatch(/^Output\s+\{\s+"output": "x"\s+\}\s+\d+ tokens$/i);
    expect(await page.isEnabled("#workflow-run")).toBe(true);
    expect(await page.isDisabled("#workflow-stop")).toBe(true);
    expect(await page.textContent("#workflow-error")).toBe("");

    // The screenshot is for a person to look at: PLAYGROUND_SCREENSHOT=file keeps a copy.
    await page.fill("#chat-message", "hello from the browser");
    await page.click("#chat-send");
    await expect.poll(() => page.locator("#chat-log .meta").last().textContent()).toMatch(/^Done/);
    const shot = join(profile ?? tmpdir(), "playground.png");
    await page.screenshot({ path: shot, fullPage: true });
    const png = await readFile(shot);
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect(png.length).toBeGreaterThan(10_000);
    if (process.env.PLAYGROUND_SCREENSHOT) await copyFile(shot, process.env.PLAYGROUND_SCREENSHOT);
    await page.close();
  });

  it("answers a workflow's interrupt from the answer box and shows the rest of the run", async () => {
    const page = await openPlayground(demo.apiKey);
    await page.fill("#workflow-target", `workflow:${catalog.workflows.interrupt}`);
    await page.fill("#workflow-params", '{"input":"x"}');
    await page.click("#workflow-run");
    await page.waitForSelector("#resume-form", { state: "visible" });
    expect(await page.textContent("#resume-question")).toContain("Which city?");
    expect((await workflowEvents(page)).at(-1)).toMatch(/^Interrupt · Question\s+Which city\?$/i);
    await page.fill("#resume-answer", "Paris");
    await page.click("#resume-send");
    await page.waitForSelector("#workflow-events .event-result");
    const events = await workflowEvents(page);
    expect(events).toContainEqual(expect.stringMatching(/^You answered\s+Paris$/i));
    expect(events.at(-1)).toMatch(/^Output\s+\{\s+"output": "You answered: Paris"\s+\}/i);
    expect(await page.isHidden("#resume-form")).toBe(true);
    await page.close();
  });

  it("stops a watched async run with Stop, after listing its progress", async () => {
    const page = await openPlayground(demo.apiKey);
    await page.fill("#workflow-target", `workflow-async:${catalog.workflows.slowAsync}`);
    await page.fill("#workflow-params", '{"input":"x","run_ms":600000}');
    await page.click("#workflow-run");
    await expect
      .poll(() => page.textContent("#workflow-events .event-progress .content"))
      .toMatch(/^running · poll \d+/);
    await page.click("#workflow-stop");
    await expect
      .poll(() => workflowEvents(page).then((e) => e.at(-1)))
      .toMatch(/^Note\s+Stopped\.$/i);
    expect(await page.isEnabled("#workflow-run")).toBe(true);
    expect(await page.textContent("#workflow-error")).toBe("");
    await page.close();
  });

  it("shows Unauthenticated, with its message, for a wrong key", async () => {
    const page = await openPlayground("wrong-key-0123456789abcdef");
    expect(await page.textContent("#key-status")).toBe(
      "Unauthenticated: missing or invalid API key",
    );
    await page.selectOption("#chat-model", demoModels.bot);
    await page.fill("#chat-message", "hello");
    await page.click("#chat-send");
    await expect
      .poll(() => page.textContent("#chat-error"))
      .toBe("Unauthenticated: missing or invalid API key");
    expect(await page.locator("#chat-log .meta").last().textContent()).toBe("Failed.");
    await page.close();
  });

  it("sent the key only in the Authorization header, only to the gateway, with no page error", () => {
    const origin = new URL(gateway.url).origin;
    expect(requests.length).toBeGreaterThan(10);
    for (const { url } of requests) {
      expect(new URL(url).origin).toBe(origin);
      expect(url).not.toContain(demo.apiKey);
    }
    const calls = requests.filter((r) => r.url.includes("/cozegateway.v1."));
    expect(calls.length).toBeGreaterThan(5);
    expect(calls.filter((r) => r.authorization === `Bearer ${demo.apiKey}`).length).toBeGreaterThan(
      5,
    );
    // The wrong-key test's 401s are logged by Chromium as failed loads; nothing else may be.
    expect(problems.filter((p) => !/status of 401/.test(p))).toEqual([]);
  });
});
