import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LogFn } from "../observability/index.js";
import type { NodeRequest, NodeResponse } from "../server/http-response.js";
import type { PublicHttpHandler } from "../server/index.js";

/** Options of {@link createPlaygroundHandler}. */
export interface PlaygroundOptions {
  /**
   * The directory of the built page: `index.html`, `app.js` and `playground.css`, as
   * `npm run build` writes them to `dist/playground/`. Default: that directory, found beside
   * this module when it runs from `dist/`, or as `../../dist/playground/` when it runs from
   * `src/` (tests).
   */
  assetDir?: string;
  /**
   * Model names the page offers besides those `ModelService.ListModels` returns, such as the
   * dynamic `workflow:{id}` names of demo mode, which ListModels does not list. Default none.
   */
  suggestedModels?: readonly string[];
  /** Receives a warning when the built page is missing. */
  log?: LogFn;
}

/** The path of the page; its assets are under `/playground/`. */
export const playgroundPath = "/playground";

/**
 * The page's Content-Security-Policy: everything from this origin only, no inline script or
 * style, no plugins, no framing, no form posts; calls go to this origin only (`connect-src`).
 * Trusted Types make an accidental `innerHTML` a hard error (the page sets text only).
 */
export const playgroundCsp = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
].join("; ");

/** One file the handler serves, read once at start. */
interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** Request path → file in the asset directory and its content type. Nothing else is served. */
const files: Record<string, { file: string; type: string; optional?: boolean }> = {
  [playgroundPath]: { file: "index.html", type: "text/html; charset=utf-8" },
  [`${playgroundPath}/`]: { file: "index.html", type: "text/html; charset=utf-8" },
  [`${playgroundPath}/app.js`]: { file: "app.js", type: "text/javascript; charset=utf-8" },
  [`${playgroundPath}/app.js.map`]: {
    file: "app.js.map",
    type: "application/json; charset=utf-8",
    optional: true,
  },
  [`${playgroundPath}/playground.css`]: { file: "playground.css", type: "text/css; charset=utf-8" },
  [`${playgroundPath}/playground.css.map`]: {
    file: "playground.css.map",
    type: "application/json; charset=utf-8",
    optional: true,
  },
};

/**
 * The unauthenticated routes of the web playground: `GET /playground` (the page) and its
 * assets under `/playground/`, plus `/playground/models.json` (the suggested model names).
 * Every answer has `Cache-Control: no-cache` (revalidated by ETag), {@link playgroundCsp} and
 * `X-Content-Type-Options: nosniff`. Only the files listed here are served, so no request path
 * reaches another file: any other path under `/playground/` is 404, a method other than GET or
 * HEAD is 405. Paths outside `/playground` are not answered (the handler returns false).
 *
 * The page holds no secret: the API key is typed into it and stays in the browser.
 *
 * The files are read once, here. When the built page is missing (`npm run build` makes it),
 * this logs a warning and every playground path answers 503 saying so; the gateway itself
 * works as ever.
 */
export function createPlaygroundHandler(options: PlaygroundOptions = {}): PublicHttpHandler {
  const dir = options.assetDir ?? defaultAssetDir();
  const assets = new Map<string, Asset>();
  const missing: string[] = [];
  for (const [path, { file, type, optional }] of Object.entries(files)) {
    const full = join(dir, file);
    if (existsSync(full)) assets.set(path, asset(readFileSync(full), type));
    else if (!optional) missing.push(file);
  }
  const unbuilt =
    missing.length === 0 ? undefined : text("the playground is not built: run npm run build\n");
  if (unbuilt !== undefined) {
    options.log?.("warn", "the playground is not built: run npm run build", {
      dir,
      missing: [...new Set(missing)],
    });
  }
  const models = JSON.stringify({ suggested: [...new Set(options.suggestedModels ?? [])] });
  assets.set(
    `${playgroundPath}/models.json`,
    asset(Buffer.from(models), "application/json; charset=utf-8"),
  );

  return (req, res) => {
    const path = pathOf(req);
    if (path !== playgroundPath && !path.startsWith(`${playgroundPath}/`)) return false;
    const found = assets.get(path);
    if (req.method !== "GET" && req.method !== "HEAD") {
      send(req, res, 405, text("method not allowed\n"), { allow: "GET, HEAD" });
    } else if (unbuilt !== undefined) {
      send(req, res, 503, unbuilt);
    } else if (found === undefined) {
      send(req, res, 404, text("not found\n"));
    } else if (matches(req.headers["if-none-match"], found.etag)) {
      send(req, res, 304, undefined, { etag: found.etag });
    } else {
      send(req, res, 200, found, { etag: found.etag });
    }
    return true;
  };
}

/** `dist/playground/` beside this module (built), or from `src/playground/` (tests). */
function defaultAssetDir(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  if (existsSync(join(here, "app.js"))) return here;
  return fileURLToPath(new URL("../../dist/playground/", import.meta.url));
}

/** Whether an `If-None-Match` header names `etag` (or is `*`). */
function matches(header: string | string[] | undefined, etag: string): boolean {
  if (typeof header !== "string") return false;
  return header.split(",").some((tag) => {
    const t = tag.trim();
    return t === "*" || t === etag || t === `W/${etag}`;
  });
}

function asset(body: Buffer, type: string): Asset {
  const hash = createHash("sha256").update(body).digest("base64url").slice(0, 22);
  return { body, type, etag: `"${hash}"` };
}

function text(body: string): Asset {
  return asset(Buffer.from(body), "text/plain; charset=utf-8");
}

/** The request path without its query; the raw target, never decoded or normalized. */
function pathOf(req: NodeRequest): string {
  const url = req.url ?? "/";
  const query = url.search(/[?#]/);
  return query === -1 ? url : url.slice(0, query);
}

function send(
  req: NodeRequest,
  res: NodeResponse,
  status: number,
  body: Asset | undefined,
  headers: Record<string, string> = {},
): void {
  res.statusCode = status;
  res.setHeader("cache-control", "no-cache");
  res.setHeader("content-security-policy", playgroundCsp);
  res.setHeader("x-content-type-options", "nosniff");
  res.setHeader("referrer-policy", "no-referrer");
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (body === undefined) {
    res.end();
    return;
  }
  res.setHeader("content-type", body.type);
  res.setHeader("content-length", body.body.length);
  if (req.method === "HEAD") res.end();
  else res.end(body.body);
}
