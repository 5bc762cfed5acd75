import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PublicHttpHandler } from "../server/index.js";
import { createPlaygroundHandler, playgroundCsp } from "./playground-handler.js";

/** A response as it came off the wire. */
interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

let dir: string;
const servers: Server[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "coze-gateway-playground-"));
  await writeFile(join(dir, "index.html"), "<!doctype html><title>page</title>");
  await writeFile(join(dir, "app.js"), "console.log('app');");
  await writeFile(join(dir, "playground.css"), "body{margin:0}");
  // Files that share the directory (the compiled handler does) but are not part of the page.
  await writeFile(join(dir, "playground-handler.js"), "export const secret = 1;");
  await writeFile(join(dir, "notes.txt"), "private");
});
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  await rm(dir, { recursive: true, force: true });
});

/** Serves `handler` on 127.0.0.1; what it does not answer gets 418, so the test can tell. */
async function serve(handler: PublicHttpHandler): Promise<number> {
  const server = createServer((req, res) => {
    void Promise.resolve(handler(req, res)).then((answered) => {
      if (!answered) {
        res.statusCode = 418;
        res.end("not mine");
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

/** Sends `path` exactly as written (fetch would normalize `..` away before sending). */
function raw(
  port: number,
  path: string,
  method = "GET",
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path, method, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the playground handler", () => {
  let port: number;
  beforeAll(async () => {
    port = await serve(
      createPlaygroundHandler({
        assetDir: dir,
        suggestedModels: ["workflow:1", "coze-echo", "workflow:1"],
      }),
    );
  });

  it("serves the page, its script and its stylesheet with their types and strict headers", async () => {
    const cases = [
      ["/playground", "text/html; charset=utf-8", "<title>page</title>"],
      ["/playground/", "text/html; charset=utf-8", "<title>page</title>"],
      ["/playground?from=banner", "text/html; charset=utf-8", "<title>page</title>"],
      ["/playground/app.js", "text/javascript; charset=utf-8", "console.log"],
      ["/playground/playground.css", "text/css; charset=utf-8", "margin:0"],
    ] as const;
    for (const [path, type, text] of cases) {
      const res = await raw(port, path);
      expect(res.status, path).toBe(200);
      expect(res.headers["content-type"], path).toBe(type);
      expect(res.body, path).toContain(text);
      expect(res.headers["cache-control"], path).toBe("no-cache");
      expect(res.headers["content-security-policy"], path).toBe(playgroundCsp);
      expect(res.headers["x-content-type-options"], path).toBe("nosniff");
    }
    expect(playgroundCsp).toMatch(/default-src 'none'/);
    expect(playgroundCsp).toMatch(/connect-src 'self'/);
    expect(playgroundCsp).not.toMatch(/unsafe|\*/);
  });

  it("lists the suggested model names once each", async () => {
    const res = await raw(port, "/playground/models.json");
    expect(res.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(JSON.parse(res.body)).toEqual({ suggested: ["workflow:1", "coze-echo"] });
  });

  it("answers HEAD with the headers only, and a matching ETag with 304", async () => {
    const head = await raw(port, "/playground/app.js", "HEAD");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
    expect(head.headers["content-length"]).toBe(String("console.log('app');".length));
    const etag = String(head.headers.etag);
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await raw(port, "/playground/app.js", "GET", { "if-none-match": etag });
    expect(again.status).toBe(304);
    expect(again.body).toBe("");
    const changed = await raw(port, "/playground/app.js", "GET", { "if-none-match": '"other"' });
    expect(changed.status).toBe(200);
  });

  it("serves nothing but the page's files: traversal and neighbours are 404", async () => {
    for (const path of [
      "/playground/../package.json",
      "/playground/..%2f..%2fpackage.json",
      "/playground/%2e%2e/%2e%2e/etc/passwd",
      "/playground/..\\..\\package.json",
      "/playground//etc/passwd",
      "/playground/playground-handler.js",
      "/playground/notes.txt",
      "/playground/app.js/",
      "/playground/index.html",
      "/playground/APP.JS",
    ]) {
      const res = await raw(port, path);
      expect(res.status, path).toBe(404);
      expect(res.body, path).toBe("not found\n");
      expect(res.headers["x-content-type-options"], path).toBe("nosniff");
    }
  });

  it("refuses other methods with 405 and Allow", async () => {
    const res = await raw(port, "/playground", "POST");
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("GET, HEAD");
  });

  it("leaves every other path to the next handler", async () => {
    for (const path of ["/", "/playgrounds", "/playground.css", "/v1/models", "/healthz"]) {
      expect((await raw(port, path)).status, path).toBe(418);
    }
  });

  it("answers 503 and warns when the page was not built, instead of failing the gateway", async () => {
    const empty = await mkdtemp(join(tmpdir(), "coze-gateway-playground-empty-"));
    const warnings: unknown[] = [];
    try {
      const handler = createPlaygroundHandler({
        assetDir: empty,
        log: (level, msg, fields) => warnings.push({ level, msg, fields }),
      });
      const unbuilt = await serve(handler);
      const res = await raw(unbuilt, "/playground");
      expect(res.status).toBe(503);
      expect(res.body).toContain("npm run build");
      expect((await raw(unbuilt, "/v1/models")).status).toBe(418);
      expect(warnings).toEqual([
        {
          level: "warn",
          msg: "the playground is not built: run npm run build",
          fields: { dir: empty, missing: ["index.html", "app.js", "playground.css"] },
        },
      ]);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});

describe("the page's browser code", () => {
  it("imports nothing of the gateway but the generated clients", () => {
    const here = import.meta.dirname;
    const src = resolve(here, "..");
    const files = ["app.ts", ...readdirSync(join(here, "web")).map((f) => `web/${f}`)].filter(
      (f) => !f.endsWith(".test.ts"),
    );
    const packages = new Set([
      "@connectrpc/connect",
      "@connectrpc/connect-web",
      "@bufbuild/protobuf",
    ]);
    const wrong: string[] = [];
    for (const file of files) {
      const text = readFileSync(join(here, file), "utf8");
      for (const [, spec = ""] of text.matchAll(/(?:from|import\()\s*"([^"]+)"/g)) {
        const target = spec.startsWith(".")
          ? relative(src, resolve(dirname(join(here, file)), spec))
          : spec;
        const allowed = spec.startsWith(".")
          ? target.startsWith("gen/") || target.startsWith("playground/web/")
          : packages.has(spec);
        if (!allowed) wrong.push(`${file}: ${spec}`);
      }
    }
    expect(files.length).toBeGreaterThan(3);
    expect(wrong).toEqual([]);
  });
});
