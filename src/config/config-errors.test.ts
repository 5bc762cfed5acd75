import { describe, it } from "vitest";
import { selfSignedCertificate } from "../../test/support/certificates.js";
import { aliceKey, configErrorHarness } from "../../test/support/config-fixtures.js";
import { parseConfig } from "./parse-config.js";

// Keys generated at test time; no key is committed.
const { key, ecPem, expectError, rejects } = configErrorHarness();
const cert = selfSignedCertificate(key);
const encryptedPem = key.privateKey
  .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "not-a-secret" })
  .toString();

function text(yaml: string, file = "gateway.yaml"): Promise<unknown> {
  return parseConfig(yaml, { file, baseDir: "/nonexistent", env: {} });
}

describe("syntax and top level", () => {
  it("names the line of a duplicate YAML key, without quoting the file", async () => {
    await expectError(
      text(
        `api_keys:\n  - name: alice\n    key: ${aliceKey}\n    key: ${aliceKey}\nchannels: []\n`,
      ),
      "gateway.yaml: line 4, column 5: is not valid YAML: a key appears twice in the same mapping",
    );
  });

  it("reports a bad escape in a double-quoted key without quoting the key", async () => {
    await expectError(
      text(`api_keys:\n  - name: alice\n    key: "${aliceKey}\\q"\n`),
      "gateway.yaml: line 3, column 43: is not valid YAML: a double-quoted string holds an invalid escape sequence",
    );
  });

  it("reports where a .json file stops being JSON, without quoting it", async () => {
    await expectError(
      text(
        `{\n  "api_keys": [{"name": "alice", "key": "${aliceKey}"}],\n  oops\n}`,
        "gateway.json",
      ),
      "gateway.json: line 3, column 3: is not valid JSON",
    );
  });

  it("points at the end of a .json file cut short", async () => {
    await expectError(
      text(`{\n  "api_keys": [{"name": "alice", "key": "${aliceKey}"}]`, "gateway.json"),
      "gateway.json: line 2, column 77: is not valid JSON", // just past the last character,
    );
  });

  it("refuses a YAML alias bomb instead of expanding it", async () => {
    const lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 10; i++) {
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(", ")}]`,
      );
    }
    await expectError(
      text(lines.join("\n")),
      "gateway.yaml: is not valid YAML: too many alias expansions",
    );
  });

  it("refuses an empty file", async () => {
    await expectError(
      text("# nothing yet\n"),
      "gateway.yaml: is empty; expected a mapping with server_secret, api_keys and channels (and optionally server, tracing, state and interrupts)",
    );
  });

  it("refuses a file that is a list", async () => {
    await expectError(
      text("- api_keys\n- channels\n"),
      "gateway.yaml: must be a mapping with server_secret, api_keys and channels (and optionally server, tracing, state and interrupts), not a list",
    );
  });

  it("refuses an unknown top-level key, suggesting the known one", async () => {
    await expectError(
      rejects((c) => {
        c.chanels = [];
      }),
      "gateway.yaml: chanels: is not a known field (did you mean channels?); expected one of: server, server_secret, api_keys, channels, tracing, state, interrupts",
    );
  });
});

describe("server", () => {
  const server = (value: Record<string, unknown>) =>
    rejects((c) => {
      c.server = value;
    });

  it("refuses a typo in a server key", async () => {
    await expectError(
      server({ prot: 8080 }),
      "gateway.yaml: server.prot: is not a known field (did you mean port?); expected one of: host, port, tls, cors_origins, body_limit_bytes, shutdown_grace_ms, playground, idle_timeout_ms, headers_timeout_ms, request_timeout_ms, max_concurrent_streams, max_streams_per_key, metrics, trusted_proxies",
    );
  });

  it("refuses a port out of range", async () => {
    await expectError(
      server({ port: 70000 }),
      "gateway.yaml: server.port: must be an integer from 0 to 65535",
    );
  });

  it("refuses a port given as a string", async () => {
    await expectError(
      server({ port: "8080" }),
      "gateway.yaml: server.port: must be an integer from 0 to 65535, not a string",
    );
  });

  it("refuses a host that is neither an address nor a name", async () => {
    await expectError(
      server({ host: "my host" }),
      "gateway.yaml: server.host: must be an IP address or a host name, e.g. 127.0.0.1, 0.0.0.0 or ::",
    );
  });

  it("refuses a CORS origin with a path", async () => {
    await expectError(
      server({ cors_origins: ["https://app.example.com/app"] }),
      'gateway.yaml: server.cors_origins[0]: "https://app.example.com/app" is not an origin such as https://app.example.com (scheme://host[:port], no path), or *',
    );
  });

  it.each([
    [["10.0.0.0/33"], 'server.trusted_proxies[0]: "10.0.0.0/33" has a prefix length above 32'],
    [
      ["proxy.local"],
      'server.trusted_proxies[0]: "proxy.local" is not an IP address or a CIDR block, e.g. 10.0.0.0/8, 127.0.0.1 or fd00::/8',
    ],
    [
      ["10.0.0.0/8", "fd00::/x"],
      'server.trusted_proxies[1]: "fd00::/x" has a prefix length that is not a number from 0 to 128',
    ],
    [
      [8],
      "server.trusted_proxies[0]: must be an IP address or a CIDR block, e.g. 10.0.0.0/8, 127.0.0.1 or fd00::/8, not a number",
    ],
    [
      "10.0.0.0/8",
      "server.trusted_proxies: must be a list, each an IP address or a CIDR block, e.g. 10.0.0.0/8, 127.0.0.1 or fd00::/8, not a string",
    ],
  ])("refuses a trusted proxy that is not an address or block: %j", async (value, message) => {
    await expectError(server({ trusted_proxies: value }), `gateway.yaml: ${message}`);
  });

  it("refuses a body limit under 1 KiB", async () => {
    await expectError(
      server({ body_limit_bytes: 0 }),
      "gateway.yaml: server.body_limit_bytes: must be an integer from 1024 to 1073741824",
    );
  });

  it("refuses TLS with a certificate but no key", async () => {
    await expectError(
      server({ tls: { cert } }),
      "gateway.yaml: server.tls.key: is missing; expected a PEM private key, env:NAME or file:PATH; tls needs both cert and key",
    );
  });

  it("refuses a TLS certificate that is not PEM, hinting at file:", async () => {
    await expectError(
      server({ tls: { cert: "./tls/cert.pem", key: key.pkcs8 } }),
      "gateway.yaml: server.tls.cert: is not a PEM certificate: expected a -----BEGIN CERTIFICATE----- block; to read it from a file, write file:PATH",
    );
  });

  it("refuses a TLS key that does not belong to the certificate", async () => {
    await expectError(
      server({ tls: { cert, key: ecPem } }),
      "gateway.yaml: server.tls.key: does not belong to the certificate in server.tls.cert",
    );
  });

  it("refuses an encrypted TLS key", async () => {
    await expectError(
      server({ tls: { cert, key: encryptedPem } }),
      "gateway.yaml: server.tls.key: is encrypted; provide it without a passphrase",
    );
  });

  it("refuses an idle timeout below a second", async () => {
    await expectError(
      server({ idle_timeout_ms: 500 }),
      "gateway.yaml: server.idle_timeout_ms: must be an integer from 1000 to 3600000",
    );
  });

  it("refuses a request timeout shorter than the headers timeout", async () => {
    await expectError(
      server({ headers_timeout_ms: 20_000, request_timeout_ms: 15_000 }),
      "gateway.yaml: server.request_timeout_ms: must be at least headers_timeout_ms (20000)",
    );
  });

  it("refuses a stream cap of zero", async () => {
    await expectError(
      server({ max_concurrent_streams: 0 }),
      "gateway.yaml: server.max_concurrent_streams: must be an integer from 1 to 10000",
    );
    await expectError(
      server({ max_streams_per_key: 0 }),
      "gateway.yaml: server.max_streams_per_key: must be an integer from 1 to 1000000",
    );
  });

  it("refuses a metrics address without a port", async () => {
    await expectError(
      server({ metrics: { listen: "127.0.0.1" } }),
      "gateway.yaml: server.metrics.listen: must be HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464",
    );
    await expectError(
      server({ metrics: { listen: "127.0.0.1:99999" } }),
      "gateway.yaml: server.metrics.listen: must be an integer from 0 to 65535",
    );
  });

  it("refuses a short metrics key without quoting it", async () => {
    await expectError(
      server({ metrics: { key: "short" } }),
      "gateway.yaml: server.metrics.key: must be at least 16 printable ASCII characters without spaces",
    );
  });

  it("refuses a bad COZE_GATEWAY_PORT", async () => {
    await expectError(
      rejects(() => {}, { COZE_GATEWAY_PORT: "80a" }),
      "gateway.yaml: server.port (env COZE_GATEWAY_PORT): must be an integer from 0 to 65535",
    );
  });

  it("refuses a bad origin in COZE_GATEWAY_CORS_ORIGINS", async () => {
    await expectError(
      rejects(() => {}, { COZE_GATEWAY_CORS_ORIGINS: "https://a.example.com, app.example.com" }),
      'gateway.yaml: server.cors_origins (env COZE_GATEWAY_CORS_ORIGINS): entry 2 "app.example.com" is not an origin such as https://app.example.com (scheme://host[:port], no path), or *',
    );
  });
});

describe("server_secret and raw_coze_ids", () => {
  it("requires server_secret, saying what it is for and how to make one", async () => {
    await expectError(
      rejects((c) => {
        delete c.server_secret;
      }),
      "gateway.yaml: server_secret: is required: a random secret of at least 32 characters, env:NAME or file:PATH. It binds the ids handed to each API key; generate one with `openssl rand -base64 32` and give every replica the same",
    );
  });

  it("refuses a short server_secret without quoting it, naming the variable it came from", async () => {
    await expectError(
      parseConfig(
        `server_secret: env:GW_SECRET\napi_keys: [{ name: alice, key: ${aliceKey} }]\nchannels: []\n`,
        { file: "gateway.yaml", baseDir: "/nonexistent", env: { GW_SECRET: "short-secret" } },
      ),
      "gateway.yaml: server_secret: is too short: use at least 32 characters (from env:GW_SECRET); generate one with `openssl rand -base64 32` and give every replica the same",
    );
  });

  it("refuses a server_secret with spaces inside", async () => {
    await expectError(
      rejects((c) => {
        c.server_secret = "a secret with spaces that is long enough to pass";
      }),
      "gateway.yaml: server_secret: must be printable ASCII without spaces",
    );
  });

  it("refuses raw_coze_ids that is not true or false", async () => {
    await expectError(
      rejects((c) => {
        (c.api_keys[0] as Record<string, unknown>).raw_coze_ids = "yes";
      }),
      "gateway.yaml: api_keys[alice].raw_coze_ids: must be true or false, not a string",
    );
  });
});
