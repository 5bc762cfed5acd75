import {
  absent,
  child,
  fail,
  integer,
  kindOf,
  type LoadContext,
  type Place,
  root,
  section,
  text,
} from "./fields.js";
import { fromLabel, resolveSecret } from "./secret-ref.js";

/** Where spans go: the optional top-level `tracing` section. */
export interface TracingConfig {
  /** The OTLP/HTTP traces URL; a URL without a path gets `/v1/traces`. */
  otlpEndpoint: string;
  /** `http/protobuf` (the default) or `http/json`. */
  protocol: "http/protobuf" | "http/json";
  /** Headers sent with every export, by lowercase name. Secrets: never logged. */
  headers: Record<string, string>;
  /** The `service.name` of every span. Default `coze-gateway`. */
  serviceName: string;
  /** Share of new traces recorded, from 0 to 1. Default 1. */
  sampleRatio: number;
  /** Most finished spans waiting for export; more are dropped. Default 2048. */
  maxQueueSpans: number;
  /** Longest one export may take, retries included, in ms. Default 10 000. */
  exportTimeoutMs: number;
}

/** Defaults of the `tracing` section. */
export const tracingDefaults = {
  protocol: "http/protobuf",
  serviceName: "coze-gateway",
  sampleRatio: 1,
  maxQueueSpans: 2048,
  exportTimeoutMs: 10_000,
} as const;

const tracingKeys = [
  "otlp_endpoint",
  "protocol",
  "headers",
  "service_name",
  "sample_ratio",
  "max_queue_spans",
  "export_timeout_ms",
];
const urlRule = "an http or https URL, e.g. http://127.0.0.1:4318/v1/traces (no query)";
const headersRule = "name=value pairs separated by commas, env:NAME or file:PATH";
/** Headers the exporter sets itself, or that would break the request. */
const reservedHeaders = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "transfer-encoding",
  "connection",
  "host",
  "user-agent",
]);

/**
 * Reads the optional top-level `tracing` section; `undefined` when absent (tracing off). Plain
 * http to a host other than loopback is a warning: spans and the headers would travel in clear.
 *
 * @throws ConfigError for unknown keys, a missing or bad endpoint, a bad protocol, headers that
 *   are not `name=value` pairs of valid names and values (the message names the entry by number,
 *   never its value), a ratio outside 0–1, or numbers out of range.
 */
export async function readTracing(
  ctx: LoadContext,
  value: unknown,
): Promise<TracingConfig | undefined> {
  if (absent(value)) return undefined;
  const place = child(root, "tracing");
  const map = section(ctx, place, value, tracingKeys);
  const otlpEndpoint = readEndpoint(ctx, child(place, "otlp_endpoint"), map.otlp_endpoint);
  const protocolPlace = child(place, "protocol");
  const protocol = text(ctx, protocolPlace, map.protocol, "http/protobuf or http/json");
  if (protocol !== undefined && protocol !== "http/protobuf" && protocol !== "http/json") {
    fail(ctx, protocolPlace, "must be http/protobuf or http/json");
  }
  const serviceName = readServiceName(ctx, child(place, "service_name"), map.service_name);
  return {
    otlpEndpoint,
    protocol: protocol ?? tracingDefaults.protocol,
    headers: await readHeaders(ctx, child(place, "headers"), map.headers),
    serviceName,
    sampleRatio: readRatio(ctx, child(place, "sample_ratio"), map.sample_ratio),
    maxQueueSpans: integer(ctx, child(place, "max_queue_spans"), map.max_queue_spans, {
      min: 16,
      max: 1_000_000,
      fallback: tracingDefaults.maxQueueSpans,
    }),
    exportTimeoutMs: integer(ctx, child(place, "export_timeout_ms"), map.export_timeout_ms, {
      min: 1000,
      max: 60_000,
      fallback: tracingDefaults.exportTimeoutMs,
    }),
  };
}

function readEndpoint(ctx: LoadContext, place: Place, value: unknown): string {
  if (absent(value)) fail(ctx, place, `is missing; expected ${urlRule}`);
  const raw = text(ctx, place, value, urlRule) ?? "";
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    fail(ctx, place, `must be ${urlRule}`);
  }
  if (
    (url.protocol !== "http:" && url.protocol !== "https:") ||
    raw.includes("?") ||
    raw.includes("#")
  ) {
    fail(ctx, place, `must be ${urlRule}`);
  }
  if (url.username !== "" || url.password !== "") {
    fail(ctx, place, "must not hold a user name or password; put credentials in headers");
  }
  const loopback = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/.test(url.hostname);
  if (url.protocol === "http:" && !loopback) {
    ctx.warnings.push(
      `${ctx.file}: ${place.path}: uses plain http to ${url.host}; spans and export headers would travel unencrypted`,
    );
  }
  // As OTEL_EXPORTER_OTLP_ENDPOINT: a bare collector address gets the traces path.
  const path = url.pathname === "/" ? "/v1/traces" : url.pathname;
  return `${url.origin}${path}`;
}

function readServiceName(ctx: LoadContext, place: Place, value: unknown): string {
  const rule = "1 to 128 printable ASCII characters";
  const name = text(ctx, place, value, rule);
  if (name === undefined) return tracingDefaults.serviceName;
  if (!/^[\x20-\x7e]{1,128}$/.test(name) || name.trim() !== name)
    fail(ctx, place, `must be ${rule}`);
  return name;
}

function readRatio(ctx: LoadContext, place: Place, value: unknown): number {
  if (absent(value)) return tracingDefaults.sampleRatio;
  if (typeof value !== "number")
    fail(ctx, place, `must be a number from 0 to 1, not ${kindOf(value)}`);
  if (!(value >= 0 && value <= 1)) fail(ctx, place, "must be a number from 0 to 1");
  return value;
}

/**
 * `headers`: `name=value,name=value` as `OTEL_EXPORTER_OTLP_HEADERS` writes them (values
 * percent-decoded), inline or from `env:`/`file:`. Nothing of a value appears in a message.
 */
async function readHeaders(
  ctx: LoadContext,
  place: Place,
  value: unknown,
): Promise<Record<string, string>> {
  if (absent(value)) return {};
  const secret = await resolveSecret(ctx, place, value, {
    expected: headersRule,
    secret: true,
    inConfigText: true,
  });
  const from = fromLabel(secret);
  // No prototype: a header named __proto__ is a header, not an object's prototype.
  const headers: Record<string, string> = Object.create(null);
  const entries = secret.text.trim().split(",");
  entries.forEach((entry, i) => {
    const at = `entry ${i + 1}${from}`;
    const eq = entry.indexOf("=");
    if (eq <= 0) fail(ctx, place, `${at} is not name=value; expected ${headersRule}`);
    const name = entry.slice(0, eq).trim().toLowerCase();
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) {
      fail(ctx, place, `${at} does not start with an HTTP header name`);
    }
    if (reservedHeaders.has(name)) fail(ctx, place, `${at}: ${name} is set by the gateway`);
    if (Object.hasOwn(headers, name)) fail(ctx, place, `${at}: ${name} appears twice`);
    let decoded: string;
    try {
      decoded = decodeURIComponent(entry.slice(eq + 1).trim());
    } catch {
      fail(ctx, place, `${at}: the value of ${name} is not valid percent-encoding`);
    }
    if (decoded === "" || !/^[\x20-\x7e\t]*$/.test(decoded)) {
      fail(ctx, place, `${at}: the value of ${name} must be printable ASCII and not empty`);
    }
    headers[name] = decoded;
  });
  return headers;
}
