// The operator documentation, checked against the code it describes: a reference that drifts
// from the validator, a dead link, a command or config that no longer works fails here.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import {
  ConfigError,
  type GatewayConfig,
  parseConfig,
  serverDefaults,
  validateConfig,
} from "../src/config/index.js";
import { selfSignedCertificate } from "./support/certificates.js";
import { generateRsaKey, type TestKey } from "./support/config-fixtures.js";
import { type GatewayFixture, startGatewayFixture } from "./support/gateway-fixture.js";

const root = resolve(import.meta.dirname, "..");
const read = (path: string) => readFileSync(join(root, path), "utf8");
const docFiles = readdirSync(join(root, "docs"))
  .filter((f) => f.endsWith(".md"))
  .map((f) => `docs/${f}`);
const markdownFiles = ["README.md", ...docFiles];

/** A fenced code block of a Markdown file. */
interface CodeBlock {
  file: string;
  lang: string;
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
}

function codeBlocks(file: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const lines = read(file).split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)/.exec(lines[i] ?? "");
    if (open === null) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i] ?? ""); i++) {
      body.push((lines[i] ?? "").slice(open[1]?.length ?? 0));
    }
    blocks.push({ file, lang: open[2] ?? "", code: `${body.join("\n")}\n`, line: start + 1 });
  }
  return blocks;
}

/** Markdown text without its code blocks (links and `npm run` in prose). */
function prose(file: string): string {
  return read(file).replace(/^\s*```[\s\S]*?^\s*```\s*$/gm, "");
}

// ---------------------------------------------------------------------------------------------
// docs/configuration.md against the config loader

type Raw = Record<string, unknown>;

/** A row of a reference table: the key's full path and its cells. */
interface Row {
  path: string;
  type: string;
  default: string;
  range: string;
}

/** Section heading → the path prefix of its table's keys. */
function sectionPath(heading: string): string | undefined {
  if (heading === "Top level") return "";
  return /^`([a-z_.[\]]+)`$/.exec(heading)?.[1];
}

function referenceRows(): Row[] {
  const rows: Row[] = [];
  let section: string | undefined;
  for (const line of prose("docs/configuration.md").split("\n")) {
    const heading = /^#{2,3} (.+)$/.exec(line);
    if (heading) {
      section = sectionPath(heading[1] ?? "");
      continue;
    }
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    const key = /^`([a-z_0-9]+)`$/.exec(cells[1] ?? "")?.[1];
    if (section === undefined || key === undefined || cells.length < 6) continue;
    rows.push({
      path: section === "" ? key : `${section}.${key}`,
      type: cells[2] ?? "",
      default: cells[3] ?? "",
      range: cells[4] ?? "",
    });
  }
  return rows;
}

const options = (baseDir: string, env: Record<string, string> = {}) => ({
  file: "gateway.yaml",
  baseDir,
  env,
});

/** The config loader's outcome for `value`: the config, or the ConfigError it threw. */
async function load(value: unknown, baseDir: string): Promise<GatewayConfig | ConfigError> {
  try {
    return await validateConfig(value, options(baseDir));
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
}

function must(result: GatewayConfig | ConfigError): GatewayConfig {
  if (result instanceof ConfigError) throw result;
  return result;
}

let key: TestKey;
let cert: string;
let tmp: string;

beforeAll(async () => {
  key = generateRsaKey();
  cert = selfSignedCertificate(key);
  tmp = await mkdtemp(join(tmpdir(), "coze-gateway-docs-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/**
 * The smallest config that sets no optional key: two channels (the second the default, so the
 * first shows `default`'s default), a plain-name bot route and a workflow route; and the
 * `tracing` section with its one required key, so its defaults show.
 */
function minimalConfig(): Raw {
  const credentials = () => ({
    client_id: "1127900106117",
    public_key_id: "kid-1",
    private_key: key.pkcs8,
    default_bot_id: "7390000000000000001",
  });
  return {
    server_secret: "docs-test-server-secret-0123456789abcdef",
    api_keys: [{ name: "alice", key: "sk-alice-0123456789abcdef" }],
    channels: [
      {
        name: "cn-main",
        credentials: credentials(),
        models: [{ name: "support-bot" }, { name: "wf", workflow_id: "7391000000000000001" }],
      },
      { name: "other", default: true, credentials: credentials() },
    ],
    tracing: { otlp_endpoint: "http://127.0.0.1:4318/v1/traces" },
  };
}

/** The mapping that holds `path`'s last key (lists: their first item), created as needed. */
function holder(config: Raw, path: string): { map: Raw; key: string } {
  const parts = path.split(".");
  let map = config;
  for (const part of parts.slice(0, -1)) {
    const name = part.replace(/\[\]$/, "");
    map[name] ??= part.endsWith("[]") ? [{}] : {};
    const next = map[name];
    map = (Array.isArray(next) ? next[0] : next) as Raw;
  }
  return { map, key: (parts.at(-1) ?? "").replace(/\[\]$/, "") };
}

/** Every key the loader accepts: it names them all when it refuses an unknown one. */
async function acceptedKeys(): Promise<Set<string>> {
  const probe = "zz_probe";
  const sections = [
    "",
    "server",
    "server.tls",
    "server.metrics",
    "api_keys[]",
    "api_keys[].limits",
    "api_keys[].limits.quota",
    "channels[]",
    "channels[].credentials",
    "channels[].sessions",
    "channels[].token",
    "channels[].polling",
    "channels[].timeouts",
    "channels[].limits",
    "channels[].models[]",
    "tracing",
    "state",
    "channels[].discovery",
    "interrupts",
  ];
  const keys = new Set<string>();
  for (const section of sections) {
    const config = minimalConfig();
    const target = section === "" ? config : holder(config, `${section}.${probe}`).map;
    target[probe] = 1;
    const result = await load(config, tmp);
    // Unknown settings keys are ignored with a warning (as in new-api); any other is an error.
    const text =
      result instanceof ConfigError
        ? result.problem
        : (result.warnings.find((w) => w.includes(probe)) ?? "");
    const list = /(?:expected one of|known): (.+)$/.exec(text)?.[1];
    expect(list, `the loader names the keys of ${section || "the top level"}`).toBeDefined();
    for (const name of (list ?? "").split(", ")) keys.add(section ? `${section}.${name}` : name);
  }
  return keys;
}

/** Keys under which the loader applies a default, read from a loaded minimal config. */
const appliedDefaults: Record<string, (c: GatewayConfig) => unknown> = {
  "server.host": (c) => c.server.host,
  "server.port": (c) => c.server.port,
  "server.cors_origins": (c) => c.server.corsOrigins,
  "server.trusted_proxies": (c) => c.server.trustedProxies,
  "server.body_limit_bytes": (c) => c.server.bodyLimitBytes,
  "server.shutdown_grace_ms": (c) => c.server.shutdownGraceMs,
  "server.playground": (c) => c.server.playground,
  "api_keys[].raw_coze_ids": (c) => c.apiKeys[0]?.rawCozeIds,
  "server.idle_timeout_ms": (c) => c.server.idleTimeoutMs,
  "server.headers_timeout_ms": (c) => c.server.headersTimeoutMs,
  "server.request_timeout_ms": (c) => c.server.requestTimeoutMs,
  "server.max_concurrent_streams": (c) => c.server.maxConcurrentStreams,
  "server.max_streams_per_key": (c) => c.server.maxStreamsPerKey,
  "channels[].base_url": (c) => first(c).baseUrl,
  "channels[].default": (c) => first(c).isDefault,
  "channels[].models": (c) => c.models.filter((m) => m.channel === "other"),
  "channels[].sessions.per_user": (c) => first(c).sessions?.perUser,
  "channels[].sessions.max_cached": (c) => first(c).sessions?.maxCached,
  "channels[].token.duration_seconds": (c) => {
    const { credential } = first(c);
    return credential.kind === "pat" ? undefined : credential.durationSeconds;
  },
  "channels[].token.refresh_margin_seconds": (c) => first(c).refreshMarginMs / 1000,
  "channels[].polling.interval_ms": (c) => first(c).polling.intervalMs,
  "channels[].polling.max_polls": (c) => first(c).polling.maxPolls,
  "channels[].polling.deadline_ms": (c) => first(c).polling.deadlineMs ?? 0,
  "channels[].timeouts.connect_ms": (c) => first(c).timeouts.connectMs,
  "channels[].timeouts.headers_ms": (c) => first(c).timeouts.headersMs,
  "channels[].timeouts.stream_idle_ms": (c) => first(c).timeouts.streamIdleMs,
  "channels[].timeouts.request_ms": (c) => first(c).timeouts.requestMs,
  "channels[].timeouts.sync_run_ms": (c) => first(c).timeouts.syncRunMs,
  "channels[].discovery.naming": (c) => first(c).discovery.naming,
  "channels[].discovery.interval_ms": (c) => first(c).discovery.intervalMs,
  "channels[].discovery.start_wait_ms": (c) => first(c).discovery.startWaitMs,
  "channels[].discovery.kinds": (c) => first(c).discovery.kinds,
  "channels[].discovery.max_models": (c) => first(c).discovery.maxModels,
  "channels[].models[].mode": (c) =>
    ({ workflow: "sync", workflow_async: "async", chatflow: "chatflow", bot: "" })[
      workflowRoute(c).kind
    ],
  "channels[].models[].input_field": (c) => workflowRoute(c).inputField,
  "channels[].models[].weight": (c) => workflowRoute(c).weight,
  "tracing.protocol": (c) => c.tracing?.protocol,
  "tracing.service_name": (c) => c.tracing?.serviceName,
  "tracing.sample_ratio": (c) => c.tracing?.sampleRatio,
  "tracing.max_queue_spans": (c) => c.tracing?.maxQueueSpans,
  "tracing.export_timeout_ms": (c) => c.tracing?.exportTimeoutMs,
  "channels[].limits.queue": (c) => first(c).limits?.queue,
  "channels[].limits.queue_timeout_ms": (c) => first(c).limits?.queueTimeoutMs,
  "api_keys[].limits.quota.per": (c) => c.apiKeys[0]?.limits?.quota?.per,
  "state.store": (c) => c.state?.store,
  "state.timeout_ms": (c) => c.state?.timeoutMs,
  "state.fail": (c) => c.state?.fail,
  "state.prefix": (c) => c.state?.prefix,
  "state.flush_ms": (c) => c.state?.flushMs,
  "state.share": (c) => c.state?.share,
  "interrupts.ttl_seconds": (c) => c.interrupts?.ttlSeconds,
};

/**
 * Defaults that apply inside an optional block: the block with its required keys is added to
 * the minimal config before the default is read.
 */
const withBlock: Record<string, (config: Raw) => void> = {
  "channels[].limits.queue": (c) => {
    holder(c, "channels[].limits.max_concurrent").map.max_concurrent = 1;
  },
  "channels[].limits.queue_timeout_ms": (c) => {
    holder(c, "channels[].limits.max_concurrent").map.max_concurrent = 1;
  },
  "api_keys[].limits.quota.per": (c) => {
    holder(c, "api_keys[].limits.quota.tokens").map.tokens = 1;
  },
};

function first(c: GatewayConfig) {
  const channel = c.channels[0];
  if (channel === undefined) throw new Error("no channel");
  return channel;
}

function workflowRoute(c: GatewayConfig) {
  const route = c.models.find((m) => m.name === "wf");
  if (route === undefined) throw new Error("no wf route");
  return route;
}

describe("docs/configuration.md", () => {
  const rows = referenceRows();

  it("documents every key the loader accepts, and no other", async () => {
    const documented = rows.map((r) => r.path).sort();
    expect(new Set(documented).size).toBe(documented.length);
    expect(documented).toEqual([...(await acceptedKeys())].sort());
  });

  it("states every default as the loader applies it", async () => {
    const loaded = must(await load(minimalConfig(), tmp));
    const literal = rows.filter((r) => /^`[^`]*`$/.test(r.default));
    expect(literal.length).toBeGreaterThan(15);
    for (const row of literal) {
      const read = appliedDefaults[row.path];
      expect(read, `a check of ${row.path}'s default in appliedDefaults`).toBeDefined();
      let config = loaded;
      const block = withBlock[row.path];
      if (block !== undefined) {
        const raw = minimalConfig();
        block(raw);
        config = must(await load(raw, tmp));
      }
      expect(read?.(config), row.path).toEqual(parseYaml(row.default.slice(1, -1)));
    }
  });

  it("states every integer range as the loader enforces it", async () => {
    const ranged = rows.filter((r) => r.type === "integer");
    expect(ranged.length).toBeGreaterThan(10);
    for (const row of ranged) {
      const range = /^(\d+)–(\d+)$/.exec(row.range);
      expect(range, `${row.path} has a range min–max`).not.toBeNull();
      const [min, max] = [Number(range?.[1]), Number(range?.[2])];
      const attempt = async (value: number) => {
        const config = minimalConfig();
        if (row.path.startsWith("channels[].token.")) {
          // The margin must stay below the duration: give each the widest room for the other.
          holder(config, "channels[].token.duration_seconds").map.duration_seconds = 86_399;
          holder(config, "channels[].token.refresh_margin_seconds").map.refresh_margin_seconds = 0;
        }
        if (row.path.startsWith("channels[].discovery.")) {
          // Discovery on needs the space it lists.
          holder(config, "channels[].credentials.space_id").map.space_id = "7350000000000000001";
        }
        if (/^server\.(headers|request)_timeout_ms$/.test(row.path)) {
          // The headers timeout may not exceed the request timeout: the same widest room.
          config.server = { headers_timeout_ms: 1000, request_timeout_ms: 3_600_000 };
        }
        const { map, key: name } = holder(config, row.path);
        map[name] = value;
        return load(config, tmp);
      };
      for (const ok of [min, max]) {
        expect(await attempt(ok), `${row.path}: ${ok}`).not.toBeInstanceOf(ConfigError);
      }
      for (const bad of [min - 1, max + 1]) {
        const result = await attempt(bad);
        expect(result, `${row.path}: ${bad}`).toBeInstanceOf(ConfigError);
        expect((result as ConfigError).problem).toContain(`from ${min} to ${max}`);
      }
    }
  });

  it("marks as required what the loader requires", async () => {
    const required = rows.filter((r) => r.default === "required");
    expect(required.map((r) => r.path)).toContain("channels[].credentials.private_key");
    for (const row of required) {
      const config = minimalConfig();
      if (row.path.startsWith("server.tls.")) {
        config.server = { tls: { cert, key: key.pkcs8 } };
      }
      expect(await load(config, tmp), `${row.path}: the base config`).not.toBeInstanceOf(
        ConfigError,
      );
      const { map, key: name } = holder(config, row.path);
      delete map[name];
      const result = await load(config, tmp);
      expect(result, `without ${row.path}`).toBeInstanceOf(ConfigError);
      expect((result as ConfigError).field, row.path).toMatch(new RegExp(`(^|\\.)${name}$`));
    }
  });

  it("has a full example that loads as written and sets every key", async () => {
    const block = fullExample();
    const { text, env, baseDir } = await materialize(block.code);
    const config = await parseConfig(text, options(baseDir, env));
    expect(config.warnings).toEqual([]);
    expect(config.channels.map((c) => c.name)).toEqual([
      "cn-main",
      "global",
      "partner",
      "admin",
      "coze-pat",
    ]);
    expect(config.server.tls).toBeDefined();

    const used = new Set<string>();
    collectKeys(parseYaml(block.code) as Raw, "", used);
    expect([...used].sort()).toEqual([...(await acceptedKeys())].sort());
  });
});

function fullExample(): CodeBlock {
  const text = read("docs/configuration.md");
  const after = text.indexOf("## Full example");
  const block = codeBlocks("docs/configuration.md").find(
    (b) => b.lang === "yaml" && text.indexOf(b.code.trimEnd()) > after,
  );
  if (after < 0 || block === undefined) throw new Error("no ## Full example yaml block");
  return block;
}

/** Every key path in a config value: `server.tls.cert`, `channels[].models[].name`. */
function collectKeys(value: unknown, path: string, into: Set<string>): void {
  if (Array.isArray(value)) {
    for (const item of value) collectKeys(item, `${path}[]`, into);
    return;
  }
  if (typeof value !== "object" || value === null) return;
  for (const [k, v] of Object.entries(value)) {
    const at = path === "" ? k : `${path}.${k}`;
    into.add(at);
    collectKeys(v, at, into);
  }
}

/**
 * Makes a config text from the docs loadable here: every `file:` it names exists under a fresh
 * directory (absolute paths are moved under it too) and every `env:` variable is set. What a
 * reference gets depends on its name: certificates, settings JSON, private keys (the same RSA
 * key serves TLS and Coze; the certificate is made for it), else an API key.
 */
async function materialize(
  source: string,
): Promise<{ text: string; env: Record<string, string>; baseDir: string }> {
  const baseDir = await mkdtemp(join(tmp, "config-"));
  const settings = JSON.stringify({
    client_id: "1127900106117",
    public_key_id: "kid-2",
    private_key: key.pkcs8,
    space_id: "",
    default_bot_id: "7400000000000000001",
  });
  const apiKey = () => `k-${randomBytes(16).toString("hex")}`;
  const contentFor = (name: string) => {
    if (/cert|crt|chain/i.test(name)) return cert;
    if (/settings|credentials|\.json$/i.test(name)) return settings;
    if (/private|\.pem$|\.key$/i.test(name)) return key.pkcs8;
    if (/headers/i.test(name)) return `x-api-key=${apiKey()}`;
    return apiKey();
  };
  const text = source.replace(/file:\/(?=[^\s"'])/g, "file:./");
  for (const [, path = ""] of text.matchAll(/file:([^\s"',\]}]+)/g)) {
    const full = resolve(baseDir, path);
    if (!full.startsWith(baseDir)) throw new Error(`file:${path} leaves the directory`);
    await mkdir(dirname(full), { recursive: true });
    await writeFile(full, contentFor(path), { mode: 0o600 });
  }
  const env: Record<string, string> = {};
  for (const [, name = ""] of text.matchAll(/env:([A-Za-z_][A-Za-z0-9_]*)/g)) {
    env[name] = contentFor(name);
  }
  return { text, env, baseDir };
}

// ---------------------------------------------------------------------------------------------
// Every Markdown file

describe("the Markdown files", () => {
  it("link only to files (and headings) that exist", () => {
    const broken: string[] = [];
    for (const file of markdownFiles) {
      for (const [, target = ""] of prose(file).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        const [path = "", anchor] = target.split("#");
        const to = path === "" ? join(root, file) : resolve(dirname(join(root, file)), path);
        if (!existsSync(to)) {
          broken.push(`${file}: ${target}`);
        } else if (anchor !== undefined && to.endsWith(".md")) {
          if (!anchors(relative(root, to)).has(anchor)) broken.push(`${file}: ${target}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it("mention only npm scripts that package.json defines", () => {
    const scripts = Object.keys(
      (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts,
    );
    const mentioned = new Set<string>();
    for (const file of markdownFiles) {
      const text = read(file);
      for (const [, name = ""] of text.matchAll(/\bnpm run ([\w:-]+)/g)) mentioned.add(name);
      for (const [, name = ""] of text.matchAll(/\bnpm (start|test)\b/g)) mentioned.add(name);
    }
    expect(mentioned.size).toBeGreaterThan(2);
    for (const name of mentioned) expect(scripts, `npm run ${name}`).toContain(name);
  });

  it("hold YAML blocks that parse, and configs among them that load", async () => {
    let configs = 0;
    for (const file of markdownFiles) {
      for (const block of codeBlocks(file).filter((b) => b.lang === "yaml")) {
        const where = `${file}:${block.line}`;
        const docs = parseAllDocuments(block.code);
        const errors = (Array.isArray(docs) ? docs : [docs]).flatMap((d) => d.errors);
        expect(
          errors.map((e) => e.message),
          where,
        ).toEqual([]);
        const value = parseYaml(block.code) as unknown;
        if (typeof value === "object" && value !== null && "channels" in value) {
          const { text, env, baseDir } = await materialize(block.code);
          await expect(parseConfig(text, options(baseDir, env)), where).resolves.toBeDefined();
          configs++;
        }
      }
    }
    expect(configs).toBeGreaterThanOrEqual(2); // the README's and the full example
  });
});

/** GitHub's heading anchors of a Markdown file. */
function anchors(file: string): Set<string> {
  const set = new Set<string>();
  for (const [, heading = ""] of prose(file).matchAll(/^#{1,6} (.+)$/gm)) {
    set.add(
      heading
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, "")
        .replace(/ /g, "-"),
    );
  }
  return set;
}

// ---------------------------------------------------------------------------------------------
// deploy/

describe("deploy/", () => {
  it("runs the built program with a config path in the systemd unit and the container", () => {
    const unit = read("deploy/coze-gateway.service");
    const exec = /^ExecStart=(.+)$/m.exec(unit)?.[1] ?? "";
    expect(exec).toMatch(/\bdist\/main\.js\b/);
    expect(exec).toMatch(/--config \/etc\/coze-gateway\/gateway\.yaml\b/);
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
    // systemd must wait longer than the gateway's own grace period before it kills.
    const stopSeconds = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1]);
    expect(stopSeconds * 1000).toBeGreaterThan(serverDefaults.shutdownGraceMs);

    const containerfile = read("deploy/Containerfile");
    expect(containerfile).toMatch(/^FROM node:\d+\S*/m);
    expect(containerfile).toMatch(/\bnpm ci\b/);
    expect(containerfile).toMatch(/\bnpm run build\b/);
    expect(containerfile).toMatch(/^USER (?!root\b)\S+/m);
    const argv = [...containerfile.matchAll(/^(?:CMD|ENTRYPOINT) (\[.+\])$/gm)].flatMap(
      (m) => JSON.parse(m[1] ?? "[]") as string[],
    );
    expect(argv).toContain("dist/main.js");
    expect(argv.join(" ")).toContain("--config /etc/coze-gateway/gateway.yaml");
  });

  it("copies what the build reads into the container, and the program needs only dependencies", () => {
    const containerfile = read("deploy/Containerfile");
    const copied = [...containerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) =>
      (m[1] ?? "").split(/\s+/),
    );
    const buildConfig = JSON.parse(read("tsconfig.build.json")) as {
      extends: string;
      include: string[];
      exclude: string[];
    };
    for (const needed of [
      "package.json",
      "package-lock.json",
      "tsconfig.build.json",
      buildConfig.extends.replace(/^\.\//, ""),
      ...buildConfig.include,
    ]) {
      expect(copied, needed).toContain(needed);
    }
    // `npm prune --omit=dev` leaves "dependencies" only: the built files may import no other.
    const pkg = JSON.parse(read("package.json")) as { dependencies: Record<string, string> };
    const built = sourceFiles("src").filter(
      (f) => !f.endsWith(".test.ts") && !buildConfig.exclude.includes(f),
    );
    expect(built.length).toBeGreaterThan(20);
    const imported = new Set<string>();
    for (const file of built) {
      for (const [, spec = ""] of read(file).matchAll(/(?:from|import\()\s*"([^".][^"]*)"/g)) {
        if (spec.startsWith("node:")) continue;
        imported.add(
          spec
            .split("/")
            .slice(0, spec.startsWith("@") ? 2 : 1)
            .join("/"),
        );
      }
    }
    expect([...imported].filter((name) => !(name in pkg.dependencies))).toEqual([]);
  });

  it("has proxy examples that reach the replicas over h2c with streams unbuffered", () => {
    const port = serverDefaults.port;
    const nginx = read("deploy/nginx/coze-gateway.conf");
    expect(nginx).toMatch(/grpc_pass grpc:\/\/\w+;/);
    expect(nginx).toMatch(/proxy_buffering off;/);
    expect(nginx).toMatch(/proxy_http_version 1\.1;/);
    expect(nginx).toMatch(/listen 443 ssl http2;/);
    const servers = [...nginx.matchAll(/^\s*server [\d.]+:(\d+)/gm)].map((m) => Number(m[1]));
    expect(servers.length).toBeGreaterThanOrEqual(4);
    expect(new Set(servers)).toEqual(new Set([port]));
    const body = /client_max_body_size (\d+)m;/.exec(nginx)?.[1];
    expect(Number(body) * 1024 * 1024).toBeGreaterThanOrEqual(serverDefaults.bodyLimitBytes);

    const envoy = parseYaml(read("deploy/envoy/envoy.yaml")) as {
      static_resources: { listeners: unknown[]; clusters: Raw[] };
    };
    const cluster = envoy.static_resources.clusters[0] as Raw;
    const text = JSON.stringify(cluster);
    expect(text).toContain('"http2_protocol_options":{}');
    expect(text).toContain('"grpc_health_check":{}');
    const ports = [...text.matchAll(/"port_value":(\d+)/g)].map((m) => Number(m[1]));
    expect(ports.length).toBeGreaterThanOrEqual(2);
    expect(new Set(ports)).toEqual(new Set([port]));
    // Envoy's default route timeout (15 s) would cut every stream.
    expect(JSON.stringify(envoy.static_resources.listeners)).toContain('"timeout":"0s"');
  });
});

/** The `.ts` files under `dir`, as paths relative to the repository root. */
function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => `${dir}/${f}`);
}

// ---------------------------------------------------------------------------------------------
// docs/clients.md: its commands and programs, run against a demo-mode gateway

const run = promisify(execFile);
const demoUrl = "http://127.0.0.1:8080";

/** The shell commands of a Markdown file's `sh` blocks, continuation lines joined. */
function shellCommands(file: string): string[] {
  return codeBlocks(file)
    .filter((b) => b.lang === "sh")
    .flatMap((b) => b.code.replace(/\\\n\s*/g, "").split("\n"))
    .map((line) => line.replace(/\s+#.*$/, "").trim())
    .filter((line) => line !== "");
}

/** Whether `command` is on the PATH. */
async function installed(command: string): Promise<boolean> {
  return run("sh", ["-c", `command -v ${command}`]).then(
    () => true,
    () => false,
  );
}

describe("docs/clients.md against demo mode", () => {
  let fx: GatewayFixture;
  beforeAll(async () => {
    fx = await startGatewayFixture();
  });
  afterAll(async () => {
    await fx?.close();
  });

  /** Runs a documented command as written, with the demo URL and key swapped in. */
  function shell(command: string, options: { cwd?: string; path?: string } = {}) {
    const path = [options.path, process.env.PATH].filter(Boolean).join(delimiter);
    // GATEWAY is where the Python example connects; the others name the URL on their line.
    const env = { ...process.env, PATH: path, KEY: fx.key, GATEWAY: new URL(fx.url).host };
    return run("bash", ["-c", command.replaceAll(demoUrl, fx.url)], {
      cwd: options.cwd ?? root,
      env,
      timeout: 60_000,
    });
  }

  it("starts from the URL demo mode prints", () => {
    expect(read("docs/clients.md")).toContain(demoUrl);
  });

  it("has curl and buf curl lines that succeed", async () => {
    const commands = shellCommands("docs/clients.md").filter((c) =>
      /^(curl|npx buf curl) /.test(c),
    );
    expect(commands.length).toBeGreaterThanOrEqual(8);
    for (const command of commands) {
      const { stdout } = await shell(command);
      expect(stdout, command).not.toBe("");
      // A Connect error body; buf curl exits non-zero on errors instead.
      expect(stdout, command).not.toMatch(/^\{"code":/);
      if (command.includes("ChatService/Chat"))
        expect(stdout, command).toContain("You said: Hello");
      if (command.includes("workflow:")) expect(stdout, command).toContain("hi");
    }
    // One process per command, each `npx buf curl` a second or more on a busy machine.
  }, 90_000);

  it("has REST curl lines (README, docs/responses.md) that answer as documented", async () => {
    const commands = ["README.md", "docs/responses.md"]
      .flatMap((file) => shellCommands(file))
      .filter((c) => /^curl .*\/v1\//.test(c));
    expect(commands.filter((c) => c.includes("/v1/responses")).length).toBeGreaterThanOrEqual(6);
    for (const command of commands) {
      const { stdout } = await shell(command);
      if (command.includes("/v1/responses/")) {
        expect(stdout, command).toContain('"code":"not_found"');
      } else if (command.includes("resp_not-from-this-gateway")) {
        expect(JSON.parse(stdout), command).toEqual({
          error: {
            message: "previous_response_id: no response with this id",
            type: "invalid_request_error",
            code: "not_found",
            param: "previous_response_id",
          },
        });
      } else if (command.includes("/v1/responses") && command.includes('"stream":true')) {
        expect(stdout, command).toMatch(/^event: response\.created\n/);
        expect(stdout, command).toContain("event: response.completed\n");
      } else if (command.includes("/v1/responses")) {
        expect(JSON.parse(stdout), command).toMatchObject({
          object: "response",
          status: "completed",
        });
        expect(stdout, command).toContain("You said:");
      } else {
        expect(stdout, command).not.toContain('"error"');
      }
    }
  });

  it("has grpcurl lines that succeed", async (ctx) => {
    if (!(await installed("grpcurl"))) ctx.skip(); // not packaged for Debian; runs where present
    const commands = shellCommands("docs/clients.md").filter((c) => c.startsWith("grpcurl "));
    expect(commands.length).toBeGreaterThanOrEqual(3);
    const host = new URL(fx.url).host;
    for (const command of commands) {
      const { stdout } = await shell(command.replaceAll("127.0.0.1:8080", host));
      expect(stdout, command).not.toBe("");
    }
  });

  it("has a Python client that runs as documented and prints what it says", async (ctx) => {
    const python = "/usr/bin/python3";
    const ok = await run(python, ["-c", "import grpc, grpc_tools"]).then(
      () => true,
      () => false,
    );
    if (!ok) {
      // CI installs python3-grpcio and python3-grpc-tools (.ci/run); there it must run.
      if (process.env.CI) throw new Error("python3-grpcio / python3-grpc-tools are not installed");
      ctx.skip();
    }
    const work = await mkdtemp(join(tmp, "python-"));
    const bin = join(work, "bin");
    await mkdir(bin);
    await symlink(python, join(bin, "python3")); // the python3 that has grpcio
    await symlink(join(root, "proto"), join(work, "proto"));
    const section = read("docs/clients.md").split("## Python")[1]?.split("\n## ")[0] ?? "";
    const blocks = codeBlocks("docs/clients.md").filter((b) => section.includes(b.code.trim()));
    const program = blocks.find((b) => b.lang === "python");
    const expected = blocks.find((b) => b.lang === "text");
    if (program === undefined || expected === undefined) throw new Error("no python/text block");
    await writeFile(join(work, "client.py"), program.code);
    let stdout = "";
    for (const block of blocks.filter((b) => b.lang === "sh")) {
      for (const command of block.code
        .replace(/\\\n\s*/g, "")
        .split("\n")
        .filter(Boolean)) {
        const out = await shell(command.replace(/\s+#.*$/, ""), {
          cwd: work,
          path: bin,
        }).then(
          (r) => r.stdout,
          (e: { stderr?: string }) => {
            throw new Error(`${command}: ${e.stderr ?? e}`);
          },
        );
        stdout += out;
      }
    }
    const wanted = expected.code.trimEnd().split("\n");
    const lines = stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(wanted.length);
    wanted.forEach((line, i) => {
      const pattern = line.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replaceAll("\\.\\.\\.", ".*");
      expect(lines[i]).toMatch(new RegExp(`^${pattern}$`));
    });
  });

  it("has a Connect-Web snippet that streams a chat", async () => {
    const snippet = codeBlocks("docs/clients.md").find((b) => b.lang === "ts");
    if (snippet === undefined) throw new Error("no ts block");
    expect(snippet.code).toMatch(/const apiKey = "[^"]*";/);
    // The generated code the snippet imports is this repository's src/gen; the browser's
    // fetch is Node's.
    const source = snippet.code
      .replace(/const apiKey = "[^"]*";/, `const apiKey = ${JSON.stringify(fx.key)};`)
      .replaceAll(demoUrl, fx.url)
      .replaceAll('"./gen/', '"./src/gen/');
    const bundle = await build({
      stdin: { contents: source, resolveDir: root, loader: "ts", sourcefile: "snippet.ts" },
      bundle: true,
      platform: "neutral",
      mainFields: ["module", "main"],
      format: "esm",
      write: false,
      logLevel: "silent",
    });
    const file = join(tmp, "snippet.mjs");
    await writeFile(file, bundle.outputFiles[0]?.text ?? "");
    const { stdout } = await run(process.execPath, [file], { timeout: 30_000 });
    expect(stdout.trim()).toBe("You said: Hello");
  });
});
