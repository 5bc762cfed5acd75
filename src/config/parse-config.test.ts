import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { selfSignedCertificate } from "../../test/support/certificates.js";
import {
  aliceKey,
  createTempDir,
  creds,
  generateRsaKey,
  parseObject,
  sameKeyAs,
  type TempDir,
  testServerSecret,
  validConfig,
} from "../../test/support/config-fixtures.js";
import { hashApiKey } from "./api-keys.js";
import type { GatewayConfig } from "./gateway-config.js";
import { parseConfig, validateConfig } from "./parse-config.js";

const key = generateRsaKey();
const intlKey = generateRsaKey();
const tlsKey = generateRsaKey();
const cert = selfSignedCertificate(tlsKey);
const bobHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

// Every field set, secrets by reference: the shape of a production file.
const fullYaml = `
server:
  host: 0.0.0.0
  port: 9443
  tls: { cert: file:./tls/cert.pem, key: file:./tls/key.pem }
  cors_origins: ["https://app.example.com", "http://localhost:5173"]
  body_limit_bytes: 1048576
  shutdown_grace_ms: 5000
  playground: true
  idle_timeout_ms: 45000
  headers_timeout_ms: 5000
  request_timeout_ms: 60000
  max_concurrent_streams: 128
  max_streams_per_key: 64
  metrics: { listen: "[::1]:9464", key: env:METRICS_KEY }
  trusted_proxies: ["10.0.0.0/8", "127.0.0.1", "fd00::/8", " 10.0.0.0/8 "]
server_secret: env:SERVER_SECRET
api_keys:
  - name: alice
    key: env:ALICE_KEY
  - name: bob
    sha256: ${bobHash}
    models: ["support-bot", "workflow:*"]
channels:
  - name: cn-main
    base_url: https://api.coze.cn/
    credentials:
      client_id: "1127900106117"
      public_key_id: "g3bA-kid"
      private_key: file:./keys/coze.pem
      space_id: "7300000000000000000"
      default_bot_id: "7390000000000000001"
    session_name: gateway
    sessions: { per_user: true, max_cached: 500 }
    default: true
    token: { duration_seconds: 7200, refresh_margin_seconds: 600 }
    polling: { interval_ms: 1000, max_polls: 60, deadline_ms: 120000 }
    timeouts: { connect_ms: 1000, headers_ms: 2000, stream_idle_ms: 3000, request_ms: 4000, sync_run_ms: 5000 }
    discovery: { naming: name, interval_ms: 60000, start_wait_ms: 0, kinds: [bot, chatflow], max_models: 50 }
    models:
      - support-bot
      - { name: sales-bot, bot_id: "7390000000000000009" }
      - { name: weekly-report, workflow_id: "7391000000000000001", mode: sync, input_field: query }
      - { name: long-report, workflow_id: "7391000000000000002", mode: async }
      - { name: helpdesk, workflow_id: "7391000000000000003", mode: chatflow }
  - name: com-intl
    base_url: https://api.coze.com
    credentials: file:./keys/intl-settings.json
    models:
      - { name: intl-bot, bot_id: "7490000000000000001" }
interrupts:
  ttl_seconds: 3600
`;

// The old new-api channel settings, byte for byte as users have them: a JSON object whose
// private_key holds "\\n" escapes.
const oldSettings = JSON.stringify({
  client_id: "1127900106118",
  public_key_id: "intl-kid",
  private_key: intlKey.pkcs8,
  space_id: "",
  default_bot_id: "",
});

let tmp: TempDir;
beforeAll(async () => {
  tmp = await createTempDir();
  await tmp.write("tls/cert.pem", cert, 0o644);
  await tmp.write("tls/key.pem", tlsKey.pkcs8);
  await tmp.write("keys/coze.pem", key.pkcs8);
  await tmp.write("keys/intl-settings.json", oldSettings);
});
afterAll(() => tmp.cleanup());

const metricsKey = "metrics-scrape-key-0123456789";
const env = {
  ALICE_KEY: `${aliceKey}\n`,
  METRICS_KEY: metricsKey,
  SERVER_SECRET: testServerSecret,
};

function expectedFull(source: string): GatewayConfig {
  const timeouts = {
    connectMs: 1000,
    headersMs: 2000,
    streamIdleMs: 3000,
    requestMs: 4000,
    syncRunMs: 5000,
  };
  const route = (
    name: string,
    channel: string,
    kind: string,
    targetId: string,
    inputField = "input",
  ) => ({
    name,
    channel,
    kind,
    targetId,
    inputField,
    weight: 1,
  });
  return {
    source,
    server: {
      host: "0.0.0.0",
      port: 9443,
      tls: { cert, key: tlsKey.pkcs8 },
      corsOrigins: ["https://app.example.com", "http://localhost:5173"],
      bodyLimitBytes: 1_048_576,
      shutdownGraceMs: 5000,
      playground: true,
      idleTimeoutMs: 45_000,
      headersTimeoutMs: 5000,
      requestTimeoutMs: 60_000,
      maxConcurrentStreams: 128,
      maxStreamsPerKey: 64,
      metrics: { listen: { host: "::1", port: 9464 }, keySha256: hashApiKey(metricsKey) },
      trustedProxies: ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"],
    },
    serverSecret: Buffer.from(testServerSecret),
    apiKeys: [
      { name: "alice", sha256: hashApiKey(aliceKey), models: undefined, rawCozeIds: false },
      {
        name: "bob",
        sha256: Buffer.from(bobHash, "hex"),
        models: ["support-bot", "workflow:*"],
        rawCozeIds: false,
      },
    ],
    channels: [
      {
        name: "cn-main",
        baseUrl: "https://api.coze.cn",
        credential: {
          baseUrl: "https://api.coze.cn",
          clientId: "1127900106117",
          publicKeyId: "g3bA-kid",
          privateKey: sameKeyAs(key),
          sessionName: "gateway",
          durationSeconds: 7200,
        },
        spaceId: "7300000000000000000",
        defaultBotId: "7390000000000000001",
        sessions: { perUser: true, maxCached: 500 },
        isDefault: true,
        refreshMarginMs: 600_000,
        polling: { intervalMs: 1000, maxPolls: 60, deadlineMs: 120_000 },
        timeouts,
        discovery: {
          enabled: true,
          naming: "name",
          intervalMs: 60_000,
          startWaitMs: 0,
          kinds: ["bot", "chatflow"],
          maxModels: 50,
        },
      },
      {
        name: "com-intl",
        baseUrl: "https://api.coze.com",
        credential: {
          baseUrl: "https://api.coze.com",
          clientId: "1127900106118",
          publicKeyId: "intl-kid",
          privateKey: sameKeyAs(intlKey),
          durationSeconds: 3600,
        },
        sessions: { perUser: false, maxCached: 1000 },
        isDefault: false,
        refreshMarginMs: 300_000,
        polling: { intervalMs: 2000, maxPolls: 150, deadlineMs: undefined },
        timeouts: {
          connectMs: 5000,
          headersMs: 30_000,
          streamIdleMs: 60_000,
          requestMs: 60_000,
          syncRunMs: 100_000,
        },
        discovery: {
          enabled: false,
          naming: "id",
          intervalMs: 300_000,
          startWaitMs: 5000,
          kinds: ["bot", "workflow", "chatflow"],
          maxModels: 500,
        },
      },
    ],
    models: [
      route("support-bot", "cn-main", "bot", "7390000000000000001"),
      route("sales-bot", "cn-main", "bot", "7390000000000000009"),
      route("weekly-report", "cn-main", "workflow", "7391000000000000001", "query"),
      route("long-report", "cn-main", "workflow_async", "7391000000000000002"),
      route("helpdesk", "cn-main", "chatflow", "7391000000000000003"),
      route("intl-bot", "com-intl", "bot", "7490000000000000001"),
    ],
    state: {
      store: "memory",
      url: "",
      timeoutMs: 50,
      fail: "open",
      prefix: "coze-gateway:",
      flushMs: 50,
      share: 64,
    },
    interrupts: { ttlSeconds: 3600 },
    warnings: [],
  } as GatewayConfig;
}

describe("parseConfig with a valid file", () => {
  it("reads every field of a full YAML config", async () => {
    const config = await parseConfig(fullYaml, { file: "gateway.yaml", baseDir: tmp.dir, env });
    expect(config).toEqual(expectedFull("gateway.yaml"));
  });

  it("reads the same config written as JSON", async () => {
    const json = JSON.stringify(parse(fullYaml), null, 2);
    const config = await parseConfig(json, { file: "gateway.json", baseDir: tmp.dir, env });
    expect(config).toEqual(expectedFull("gateway.json"));
  });

  it("fills every default of a minimal config", async () => {
    const config = await parseObject(validConfig(key), tmp.dir);
    expect(config.server).toEqual({
      host: "127.0.0.1",
      port: 8080,
      tls: undefined,
      corsOrigins: [],
      bodyLimitBytes: 10 * 1024 * 1024,
      shutdownGraceMs: 10_000,
      playground: false,
      idleTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
      maxConcurrentStreams: 100,
      maxStreamsPerKey: 256,
      metrics: { listen: undefined, keySha256: undefined },
      trustedProxies: [],
    });
    const [channel] = config.channels;
    expect(channel).toEqual({
      name: "cn-main",
      baseUrl: "https://api.coze.cn",
      credential: {
        baseUrl: "https://api.coze.cn",
        clientId: "1127900106117",
        publicKeyId: "g3bA-kid",
        privateKey: sameKeyAs(key),
        durationSeconds: 3600,
      },
      defaultBotId: "7390000000000000001",
      sessions: { perUser: false, maxCached: 1000 },
      isDefault: true,
      refreshMarginMs: 300_000,
      polling: { intervalMs: 2000, maxPolls: 150, deadlineMs: undefined },
      timeouts: {
        connectMs: 5000,
        headersMs: 30_000,
        streamIdleMs: 60_000,
        requestMs: 60_000,
        syncRunMs: 100_000,
      },
      discovery: {
        enabled: false,
        naming: "id",
        intervalMs: 300_000,
        startWaitMs: 5000,
        kinds: ["bot", "workflow", "chatflow"],
        maxModels: 500,
      },
    });
    expect(config.apiKeys).toEqual([
      { name: "alice", sha256: hashApiKey(aliceKey), models: undefined, rawCozeIds: false },
    ]);
    expect(config.serverSecret).toEqual(Buffer.from(testServerSecret));
    expect(config.warnings).toEqual([]);
  });

  it("accepts the old channel settings JSON pasted as a string, empty ids and all", async () => {
    const raw = validConfig(key);
    raw.channels.push({
      name: "legacy",
      credentials: oldSettings,
      models: [{ name: "x", bot_id: "1" }],
    });
    const first = raw.channels[0];
    if (first !== undefined) first.default = true;
    const config = await parseObject(raw, tmp.dir);
    const legacy = config.channels[1];
    expect(legacy?.credential).toEqual({
      baseUrl: "https://api.coze.cn",
      clientId: "1127900106118",
      publicKeyId: "intl-kid",
      privateKey: sameKeyAs(intlKey),
      durationSeconds: 3600,
    });
    expect(legacy?.spaceId).toBeUndefined();
    expect(legacy?.defaultBotId).toBeUndefined();
  });

  it("accepts a PEM with literal \\n escapes, inline and from an env variable", async () => {
    const escaped = key.pkcs8.trim().replace(/\n/g, "\\n");
    expect(escaped).not.toContain("\n");
    const raw = validConfig(key);
    creds(raw).private_key = escaped;
    const inline = await parseObject(raw, tmp.dir);
    expect(inline.channels[0]?.credential).toMatchObject({ privateKey: sameKeyAs(key) });
    creds(raw).private_key = "env:COZE_KEY";
    const fromEnv = await parseObject(raw, tmp.dir, { COZE_KEY: escaped });
    expect(fromEnv.channels[0]?.credential).toMatchObject({ privateKey: sameKeyAs(key) });
  });

  it("parses a PKCS#1 key into the same key", async () => {
    const raw = validConfig(key);
    creds(raw).private_key = key.pkcs1;
    const config = await parseObject(raw, tmp.dir);
    expect(config.channels[0]?.credential).toMatchObject({ privateKey: sameKeyAs(key) });
  });

  it("accepts an upper-case sha256 and a key file's trailing newline", async () => {
    const raw = validConfig(key);
    const digest = createHash("sha256").update("a-caller-key-from-a-file").digest("hex");
    raw.api_keys.push({ name: "bob", sha256: digest.toUpperCase() });
    raw.api_keys.push({ name: "carol", key: "file:./carol.key" });
    await tmp.write("carol.key", "sk-carol-0123456789abcdef\n");
    const config = await parseObject(raw, tmp.dir);
    expect(config.apiKeys[1]?.sha256.toString("hex")).toBe(digest);
    expect(config.apiKeys[2]?.sha256).toEqual(hashApiKey("sk-carol-0123456789abcdef"));
  });

  it("normalizes CORS origins to what browsers send and drops duplicates", async () => {
    const raw = validConfig(key);
    raw.server = { cors_origins: ["https://App.Example.com:443/", "https://app.example.com", "*"] };
    const config = await parseObject(raw, tmp.dir);
    expect(config.server.corsOrigins).toEqual(["https://app.example.com", "*"]);
  });

  it("lets channels share sections through YAML anchors and merge keys", async () => {
    const yaml = `
server_secret: ${testServerSecret}
api_keys: [{ name: alice, key: ${aliceKey} }]
channels:
  - name: a
    default: true
    credentials: file:./keys/intl-settings.json
    timeouts: &timeouts { connect_ms: 1234 }
    polling: &polling { interval_ms: 500 }
  - name: b
    credentials: file:./keys/intl-settings.json
    timeouts: *timeouts
    polling: { <<: *polling, max_polls: 10 }
`;
    const config = await parseConfig(yaml, { file: "g.yaml", baseDir: tmp.dir, env: {} });
    expect(
      config.channels.map((c) => [c.timeouts.connectMs, c.polling.intervalMs, c.polling.maxPolls]),
    ).toEqual([
      [1234, 500, 150],
      [1234, 500, 10],
    ]);
  });

  it("builds the same config from an object through validateConfig", async () => {
    const options = { file: "demo", baseDir: tmp.dir, env: {} };
    const fromObject = await validateConfig(validConfig(key), options);
    const fromText = await parseConfig(stringify(validConfig(key)), options);
    expect(fromObject).toEqual(fromText);
    expect(fromObject.source).toBe("demo");
  });
});

describe("environment overrides", () => {
  it("override host, port and CORS origins from the file", async () => {
    const raw = validConfig(key);
    raw.server = { host: "127.0.0.1", port: 8080, cors_origins: ["https://a.example.com"] };
    const config = await parseObject(raw, tmp.dir, {
      COZE_GATEWAY_HOST: "0.0.0.0",
      COZE_GATEWAY_PORT: "0",
      COZE_GATEWAY_CORS_ORIGINS: " https://b.example.com , http://localhost:3000,",
    });
    expect(config.server.host).toBe("0.0.0.0");
    expect(config.server.port).toBe(0);
    expect(config.server.corsOrigins).toEqual(["https://b.example.com", "http://localhost:3000"]);
  });

  it("ignore blank variables", async () => {
    const raw = validConfig(key);
    raw.server = { host: "::1", port: 9000, cors_origins: ["*"] };
    const config = await parseObject(raw, tmp.dir, {
      COZE_GATEWAY_HOST: "",
      COZE_GATEWAY_PORT: "  ",
      COZE_GATEWAY_CORS_ORIGINS: "",
    });
    expect(config.server).toMatchObject({ host: "::1", port: 9000, corsOrigins: ["*"] });
  });
});
