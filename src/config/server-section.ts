import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { hashApiKey } from "./api-keys.js";
import {
  absent,
  asList,
  attempt,
  attemptAsync,
  child,
  envVariable,
  fail,
  failIfKept,
  flag,
  type IntegerRule,
  integer,
  item,
  kindOf,
  type LoadContext,
  type Place,
  root,
  section,
  text,
} from "./fields.js";
import type { MetricsConfig, ServerConfig } from "./gateway-config.js";
import { fileHint, fromLabel, type ResolvedSecret, resolveSecret } from "./secret-ref.js";

const serverKeys = [
  "host",
  "port",
  "tls",
  "cors_origins",
  "body_limit_bytes",
  "shutdown_grace_ms",
  "playground",
  "idle_timeout_ms",
  "headers_timeout_ms",
  "request_timeout_ms",
  "max_concurrent_streams",
  "max_streams_per_key",
  "metrics",
  "trusted_proxies",
] as const;

/** Defaults of the `server` section. */
export const serverDefaults = {
  host: "127.0.0.1",
  port: 8080,
  bodyLimitBytes: 10 * 1024 * 1024,
  shutdownGraceMs: 10_000,
  playground: false,
  idleTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  // nginx advertises 128, Envoy 100: more than any client's parallelism on one connection needs.
  maxConcurrentStreams: 100,
  maxStreamsPerKey: 256,
} as const;

const hostRule = "an IP address or a host name, e.g. 127.0.0.1, 0.0.0.0 or ::";
const originRule =
  "an origin such as https://app.example.com (scheme://host[:port], no path), or *";
const portRule = { min: 0, max: 65_535, fallback: serverDefaults.port };

/**
 * Reads the optional `server` section, then applies the environment overrides
 * `COZE_GATEWAY_HOST`, `COZE_GATEWAY_PORT` and `COZE_GATEWAY_CORS_ORIGINS` (comma-separated;
 * a blank variable counts as unset). TLS files are read and checked: the certificate and key
 * parse, and the key belongs to the certificate. Connection timeouts and stream caps get their
 * defaults ({@link serverDefaults}); `metrics` may move `/metrics` to an address of its own and
 * require a key.
 *
 * @throws ConfigError for unknown keys, out-of-range numbers, a request timeout below the
 *   headers timeout, a bad host, origin or metrics address, a TLS block missing half its pair,
 *   or TLS material that is not what it should be.
 */
export async function readServer(ctx: LoadContext, value: unknown): Promise<ServerConfig> {
  const place = child(root, "server");
  const map = section(ctx, place, value, serverKeys);
  // Each field is read even when one before it failed: every problem of the section at once.
  const mark = ctx.errors.length;
  const at = (key: (typeof serverKeys)[number]) => child(place, key);
  const number = (key: (typeof serverKeys)[number], rule: IntegerRule) =>
    attempt(ctx, rule.fallback, () => integer(ctx, at(key), map[key], rule));
  let host =
    attempt(ctx, undefined, () => readHost(ctx, at("host"), map.host)) ?? serverDefaults.host;
  let port = number("port", portRule);
  const tls = await attemptAsync(ctx, undefined, () => readTls(ctx, at("tls"), map.tls));
  let corsOrigins = attempt(ctx, [], () => readOrigins(ctx, at("cors_origins"), map.cors_origins));
  const bodyLimitBytes = number("body_limit_bytes", {
    min: 1024,
    max: 1024 * 1024 * 1024,
    fallback: serverDefaults.bodyLimitBytes,
  });
  const shutdownGraceMs = number("shutdown_grace_ms", {
    min: 0,
    max: 600_000,
    fallback: serverDefaults.shutdownGraceMs,
  });
  const playground = attempt(ctx, false, () =>
    flag(ctx, at("playground"), map.playground, serverDefaults.playground),
  );
  const idleTimeoutMs = number("idle_timeout_ms", {
    min: 1000,
    max: 3_600_000,
    fallback: serverDefaults.idleTimeoutMs,
  });
  const headersTimeoutMs = number("headers_timeout_ms", {
    min: 1000,
    max: 600_000,
    fallback: serverDefaults.headersTimeoutMs,
  });
  const requestTimeoutMs = number("request_timeout_ms", {
    min: 1000,
    max: 3_600_000,
    fallback: serverDefaults.requestTimeoutMs,
  });
  // The headers are part of the request (Node refuses a headersTimeout above requestTimeout).
  if (requestTimeoutMs < headersTimeoutMs) {
    attempt(ctx, undefined, () =>
      fail(
        ctx,
        at("request_timeout_ms"),
        `must be at least headers_timeout_ms (${headersTimeoutMs})`,
      ),
    );
  }
  const maxConcurrentStreams = number("max_concurrent_streams", {
    min: 1,
    max: 10_000,
    fallback: serverDefaults.maxConcurrentStreams,
  });
  const maxStreamsPerKey = number("max_streams_per_key", {
    min: 1,
    max: 1_000_000,
    fallback: serverDefaults.maxStreamsPerKey,
  });
  const metrics = await attemptAsync(ctx, { listen: undefined, keySha256: undefined }, () =>
    readMetrics(ctx, at("metrics"), map.metrics),
  );
  const trustedProxies = attempt(ctx, [], () =>
    readTrustedProxies(ctx, at("trusted_proxies"), map.trusted_proxies),
  );

  const envHost = envValue(ctx, "COZE_GATEWAY_HOST");
  if (envHost !== undefined) {
    host =
      attempt(ctx, undefined, () =>
        readHost(ctx, fromEnv("server.host", "COZE_GATEWAY_HOST"), envHost),
      ) ?? host;
  }
  const envPort = envValue(ctx, "COZE_GATEWAY_PORT");
  if (envPort !== undefined) {
    const where = fromEnv("server.port", "COZE_GATEWAY_PORT");
    // Number("") and Number("0x1f") would pass a bare Number(): only plain digits are a port.
    const given = /^[0-9]{1,5}$/.test(envPort) ? Number(envPort) : Number.NaN;
    port = attempt(ctx, port, () => integer(ctx, where, given, portRule));
  }
  const envOrigins = envValue(ctx, "COZE_GATEWAY_CORS_ORIGINS");
  if (envOrigins !== undefined) {
    const where = fromEnv("server.cors_origins", "COZE_GATEWAY_CORS_ORIGINS");
    const entries = envOrigins.split(",").map((s) => s.trim());
    corsOrigins = attempt(ctx, corsOrigins, () =>
      unique(
        entries.filter((s) => s !== "").map((s, i) => origin(ctx, where, s, `entry ${i + 1} `)),
      ),
    );
  }
  failIfKept(ctx, mark);
  return {
    host,
    port,
    tls,
    corsOrigins,
    bodyLimitBytes,
    shutdownGraceMs,
    playground,
    idleTimeoutMs,
    headersTimeoutMs,
    requestTimeoutMs,
    maxConcurrentStreams,
    maxStreamsPerKey,
    metrics,
    trustedProxies,
  };
}

const cidrRule = "an IP address or a CIDR block, e.g. 10.0.0.0/8, 127.0.0.1 or fd00::/8";

/**
 * Reads `server.trusted_proxies`: a list of addresses or CIDR blocks, written back as
 * `address/prefix` (a bare address is one host). Bits past the prefix are ignored, as nginx's
 * `set_real_ip_from` does.
 */
function readTrustedProxies(ctx: LoadContext, place: Place, value: unknown): string[] {
  if (absent(value)) return [];
  const list = asList(ctx, place, value, `a list, each ${cidrRule}`);
  return unique(
    list.map((entry, i) => {
      const at = item(place, i);
      if (typeof entry !== "string") fail(ctx, at, `must be ${cidrRule}, not ${kindOf(entry)}`);
      const cidr = parseCidr(entry.trim());
      if (typeof cidr === "string") fail(ctx, at, `${JSON.stringify(entry.slice(0, 64))} ${cidr}`);
      return `${cidr.address}/${cidr.prefix}`;
    }),
  );
}

/** `address[/prefix]` as its parts, or what is wrong with it. */
export function parseCidr(
  text: string,
): { address: string; prefix: number; family: 4 | 6 } | string {
  const [address = "", prefixText, extra] = text.split("/");
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return `is not ${cidrRule}`;
  const bits = family === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^[0-9]{1,3}$/.test(prefixText)) {
    return `has a prefix length that is not a number from 0 to ${bits}`;
  }
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefix > bits) return `has a prefix length above ${bits}`;
  return { address, prefix, family: family as 4 | 6 };
}

const listenRule = "HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464";

/**
 * Reads `server.metrics`: `listen` (an address of its own for `/metrics`) and `key` (a bearer
 * key scrapes must send; inline, `env:NAME` or `file:PATH`, kept as its SHA-256 only).
 */
async function readMetrics(ctx: LoadContext, place: Place, value: unknown): Promise<MetricsConfig> {
  const map = section(ctx, place, value, ["listen", "key"]);
  const listenPlace = child(place, "listen");
  const listen = text(ctx, listenPlace, map.listen, listenRule);
  let address: MetricsConfig["listen"];
  if (listen !== undefined) {
    const parts = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(listen.trim());
    if (parts === null) fail(ctx, listenPlace, `must be ${listenRule}`);
    const host = readHost(ctx, listenPlace, parts[1] ?? parts[2]) ?? "";
    const port = integer(ctx, listenPlace, Number(parts[3]), { ...portRule, fallback: 0 });
    address = { host, port };
  }
  let keySha256: Buffer | undefined;
  if (!absent(map.key)) {
    const keyPlace = child(place, "key");
    const secret = await resolveSecret(ctx, keyPlace, map.key, {
      expected: "a key, env:NAME or file:PATH",
      secret: true,
      inConfigText: true,
    });
    // As for API keys: surrounding whitespace is a file's final newline, never part of the key.
    const key = secret.text.trim();
    if (!/^[\x21-\x7e]{16,}$/.test(key)) {
      fail(
        ctx,
        keyPlace,
        `must be at least 16 printable ASCII characters without spaces${fromLabel(secret)}`,
      );
    }
    keySha256 = hashApiKey(key);
  }
  return { listen: address, keySha256 };
}

function envValue(ctx: LoadContext, name: string): string | undefined {
  const value = envVariable(ctx, name)?.trim();
  return value === undefined || value === "" ? undefined : value;
}

function fromEnv(field: string, variable: string): Place {
  return { path: `${field} (env ${variable})` };
}

function readHost(ctx: LoadContext, place: Place, value: unknown): string | undefined {
  const host = text(ctx, place, value, hostRule);
  if (host === undefined) return undefined;
  const name =
    /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
  if (isIP(host) === 0 && !(host.length <= 253 && name.test(host))) {
    fail(ctx, place, `must be ${hostRule}`);
  }
  return host;
}

function readOrigins(ctx: LoadContext, place: Place, value: unknown): string[] {
  if (absent(value)) return [];
  const list = asList(ctx, place, value, `a list of origins, each ${originRule}`);
  return unique(
    list.map((entry, i) => {
      const at = item(place, i);
      if (typeof entry !== "string") fail(ctx, at, `must be ${originRule}, not ${kindOf(entry)}`);
      return origin(ctx, at, entry.trim(), "");
    }),
  );
}

// An origin in the form browsers send it (lower-case scheme and host, no default port, no
// slash), so the CORS check can compare strings.
function origin(ctx: LoadContext, place: Place, value: string, prefix: string): string {
  if (value === "*") return value;
  const shown = JSON.stringify(value.length > 100 ? `${value.slice(0, 97)}...` : value);
  const problem = `${prefix}${shown} is not ${originRule}`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    fail(ctx, place, problem);
  }
  const plain = /^https?:\/\/[^/?#]+\/?$/i.test(value);
  if (!plain || url.username !== "" || url.password !== "") fail(ctx, place, problem);
  return url.origin;
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

async function readTls(
  ctx: LoadContext,
  place: Place,
  value: unknown,
): Promise<ServerConfig["tls"]> {
  if (absent(value)) return undefined;
  const map = section(ctx, place, value, ["cert", "key"]);
  const certPlace = child(place, "cert");
  const keyPlace = child(place, "key");
  const both = "; tls needs both cert and key";
  const cert = await resolveSecret(ctx, certPlace, map.cert, {
    expected: `a PEM certificate chain, env:NAME or file:PATH${both}`,
    secret: false,
    inConfigText: true,
  });
  const key = await resolveSecret(ctx, keyPlace, map.key, {
    expected: `a PEM private key, env:NAME or file:PATH${both}`,
    secret: true,
    inConfigText: true,
  });
  const certificate = parseCertificate(ctx, certPlace, cert);
  const privateKey = parseTlsKey(ctx, keyPlace, key);
  if (!certificate.checkPrivateKey(privateKey)) {
    fail(ctx, keyPlace, "does not belong to the certificate in server.tls.cert");
  }
  const expires = Date.parse(certificate.validTo);
  if (expires < Date.now()) {
    ctx.warnings.push(
      `${ctx.file}: server.tls.cert: the certificate expired on ${certificate.validTo}`,
    );
  }
  return { cert: cert.text, key: key.text };
}

function parseCertificate(ctx: LoadContext, place: Place, cert: ResolvedSecret): X509Certificate {
  if (!/-----BEGIN CERTIFICATE-----/.test(cert.text)) {
    fail(
      ctx,
      place,
      `is not a PEM certificate: expected a -----BEGIN CERTIFICATE----- block${fileHint(cert)}${fromLabel(cert)}`,
    );
  }
  try {
    return new X509Certificate(cert.text);
  } catch {
    fail(ctx, place, `holds a PEM certificate that does not parse${fromLabel(cert)}`);
  }
}

function parseTlsKey(ctx: LoadContext, place: Place, key: ResolvedSecret): KeyObject {
  const label = /-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----/.exec(key.text)?.[1];
  if (label === undefined) {
    fail(
      ctx,
      place,
      `is not a PEM private key: expected a -----BEGIN PRIVATE KEY----- block${fileHint(key)}${fromLabel(key)}`,
    );
  }
  if (label === "ENCRYPTED PRIVATE KEY" || /Proc-Type:\s*4,ENCRYPTED/.test(key.text)) {
    fail(ctx, place, `is encrypted; provide it without a passphrase${fromLabel(key)}`);
  }
  try {
    return createPrivateKey(key.text);
  } catch {
    // OpenSSL's reason names no key bytes, but the message stays ours.
    fail(ctx, place, `holds a PEM private key that does not decode${fromLabel(key)}`);
  }
}
