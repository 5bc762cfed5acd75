import { pino } from "pino";
import type { CallInfo } from "../coze/http.js";
import type { TokenCacheStats, TokenEvent } from "../coze/token-cache.js";
import type { PublicHttpHandler, RequestLogFn } from "../server/index.js";
import type { LogFn } from "../server/interceptors.js";
import { LineBatcher } from "./line-batcher.js";
import { createMetrics, type GatewayMetrics } from "./metrics.js";

/** Log levels the gateway writes. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

/** Options for {@link createObservability}. */
export interface ObservabilityOptions {
  /** Least level written. Default `info`. */
  level?: LogLevel;
  /** Where JSON log lines go. Default standard error. */
  destination?: NodeJS.WritableStream;
  /** Serve `GET /metrics` (Prometheus text, no API key). Default true. */
  metricsRoute?: boolean;
  /** Token cache counters, read at scrape time. */
  tokenStats?: () => TokenCacheStats;
}

/** Logs and metrics of one gateway, with the hooks that feed them. */
export interface Observability {
  /** Structured logging (pino JSON lines) with secret fields redacted. */
  log: LogFn;
  /** Each request's line: what `log(level, "request", fields)` writes, made faster. */
  requestLog: RequestLogFn;
  metrics: GatewayMetrics;
  /** Feeds an upstream call into metrics and, when it failed, the log. */
  onUpstream(channel: string, info: CallInfo): void;
  /** Feeds a token cache event into metrics and, when it failed, the log. */
  onToken(event: TokenEvent): void;
  /** Serves `/metrics` when enabled. */
  publicRoute: PublicHttpHandler;
  /** Where the token cache counters come from (read at scrape time). */
  observeTokenCache(stats: () => TokenCacheStats): void;
  /** Writes out buffered log lines at once (before the process exits). */
  flush(): void;
}

/**
 * Field names that could carry a secret. Nothing in the gateway logs them: this is defence in
 * depth, so a future log call that passes one prints `[redacted]` instead.
 */
const secretFields = [
  "authorization",
  "apiKey",
  "api_key",
  "key",
  "privateKey",
  "private_key",
  "token",
  "accessToken",
  "access_token",
  "jwt",
  "password",
  "secret",
];

const secretNames = new Set(secretFields);

let isoSecond = Number.NaN;
let isoPrefix = "";
/**
 * pino's `"time"` field in ISO 8601 (what `pino.stdTimeFunctions.isoTime` writes), with the
 * date formatted once per second rather than once per line.
 */
function isoTime(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20); // "YYYY-MM-DDTHH:MM:SS."
  }
  return `,"time":"${isoPrefix}${String(now - second * 1000).padStart(3, "0")}Z"`;
}

/**
 * `fields` with every secret-named field, and every secret-named field of an object field, as
 * `[redacted]`; the caller's objects are left as they are. What pino's `redact` paths `x` and
 * `*.x` did, for a fraction of their cost per line (issue #6: a line per request).
 */
function redact(fields: Record<string, unknown>, nested = false): Record<string, unknown> {
  let out = fields;
  for (const name in fields) {
    const value = fields[name];
    let safe = value;
    if (secretNames.has(name)) safe = "[redacted]";
    else if (!nested && typeof value === "object" && value !== null && !Array.isArray(value)) {
      safe = redact(value as Record<string, unknown>, true);
    }
    if (safe !== value) {
      if (out === fields) out = { ...fields };
      out[name] = safe;
    }
  }
  return out;
}

const emptyStats: TokenCacheStats = {
  jwtsSigned: 0,
  tokenRequests: 0,
  tokenFailures: 0,
  cacheHits: 0,
  backgroundRefreshes: 0,
};

/** Creates the gateway's logger and metrics. */
export function createObservability(options: ObservabilityOptions = {}): Observability {
  // Asynchronous writes keep logging off the request path, gathered into batches of 16 KiB (each
  // write is a trip through libuv's thread pool and back: a write per line cost about 10 us of a
  // request's CPU, issue #6), each line written within 200 ms; flush() empties them on exit. The
  // batching is ours, in front of sonic-boom, which writes each batch as it comes (line-batcher.ts).
  const destination =
    options.destination ??
    new LineBatcher(pino.destination({ fd: 2, sync: false }), {
      maxChars: 16 * 1024,
      maxDelayMs: 200,
    });
  const logger = pino(
    {
      level: options.level ?? "info",
      base: undefined,
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  let tokenStats = options.tokenStats;
  const metrics = createMetrics({ tokenStats: () => tokenStats?.() ?? emptyStats });
  const log: LogFn = (level, msg, fields) => {
    if (fields === undefined) logger[level](msg);
    else logger[level](redact(fields), msg);
  };
  // Every request writes this line: formatted here rather than by pino's field-by-field
  // serializer (issue #6, c=1), into the same destination, so lines keep their order. Its fields
  // are ids, names and numbers (none is secret-named, see `secretFields`); JSON.stringify quotes
  // strings the way pino does. A test compares it with pino's line byte for byte.
  const requestLog: RequestLogFn = (level, line) => {
    if (!logger.isLevelEnabled(level)) return;
    let text = `{"level":"${level}"${isoTime()}`;
    if (line.requestId !== undefined) text += `,"requestId":${JSON.stringify(line.requestId)}`;
    text += `,"method":${JSON.stringify(line.method)},"code":${JSON.stringify(line.code)}`;
    text += `,"durationMs":${Number.isFinite(line.durationMs) ? line.durationMs : null}`;
    if (line.caller !== undefined) text += `,"caller":${JSON.stringify(line.caller)}`;
    if (line.cozeLogIds !== undefined) text += `,"cozeLogIds":${JSON.stringify(line.cozeLogIds)}`;
    if (line.aborted) text += `,"aborted":true`;
    destination.write(`${text},"msg":"request"}\n`);
  };
  const metricsRoute = options.metricsRoute ?? true;
  return {
    log,
    requestLog,
    metrics,
    onUpstream(channel, info) {
      metrics.upstream(channel, info);
      if (info.outcome !== "ok") {
        log("warn", "coze call failed", {
          channel,
          step: info.step,
          outcome: info.outcome,
          status: info.status,
          cozeLogId: info.logId,
          retries: info.retries,
        });
      }
    },
    onToken(event) {
      metrics.token(event);
      if (event.type === "failed") {
        log("warn", "coze token request failed", {
          credential: event.key,
          code: event.code,
          status: event.status,
          cozeCode: event.cozeCode,
          cozeLogId: event.logId,
          retryInMs: event.retryInMs,
        });
      }
    },
    async publicRoute(req, res) {
      const path = (req.url ?? "").split("?")[0];
      if (!metricsRoute || path !== "/metrics") return false;
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD" });
        res.end();
        return true;
      }
      const body = await metrics.render();
      res.writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-store" });
      if (req.method === "HEAD") res.end();
      else res.end(body);
      return true;
    },
    observeTokenCache(stats) {
      tokenStats = stats;
    },
    flush() {
      const sync = (destination as { flushSync?: () => void }).flushSync;
      if (sync) {
        try {
          sync.call(destination);
        } catch {
          // Not ready yet (nothing written): nothing to flush.
        }
      } else {
        logger.flush();
      }
    },
  };
}
