import { describe, expect, it } from "vitest";
import { selfSignedCertificate } from "../../test/support/certificates.js";
import {
  creds,
  generateRsaKey,
  parseObject,
  validConfig,
} from "../../test/support/config-fixtures.js";

const key = generateRsaKey();
const tlsKey = generateRsaKey();
// File references are not used here: nothing is read from this directory.
const baseDir = "/nonexistent";

describe("warnings", () => {
  it("warns about unknown settings keys, which the old channel ignored too", async () => {
    const raw = validConfig(key);
    creds(raw).bot_id = "7390000000000000001";
    const config = await parseObject(raw, baseDir);
    expect(config.warnings).toEqual([
      "gateway.yaml: channels[cn-main].credentials.bot_id: is not a known settings field and is ignored; known: client_id, public_key_id, private_key, space_id, default_bot_id, account_id, enterprise_id, personal_access_token",
    ]);
  });

  it("warns about plain http to a remote Coze host, not to loopback", async () => {
    const raw = validConfig(key);
    const channel = raw.channels[0];
    if (channel !== undefined) channel.base_url = "http://coze.internal:8080";
    expect((await parseObject(raw, baseDir)).warnings).toEqual([
      "gateway.yaml: channels[cn-main].base_url: uses plain http to coze.internal:8080; access tokens would travel unencrypted",
    ]);
    if (channel !== undefined) channel.base_url = "http://127.0.0.1:9000/";
    const local = await parseObject(raw, baseDir);
    expect(local.warnings).toEqual([]);
    expect(local.channels[0]?.baseUrl).toBe("http://127.0.0.1:9000");
  });

  it("warns about allow-list entries that match no model", async () => {
    const raw = validConfig(key);
    const alice = raw.api_keys[0];
    if (alice !== undefined) {
      alice.models = [
        "support-bot",
        "suport-bot",
        "workflow:7391",
        "workflow-async:*",
        "sales-*",
        "support*",
      ];
    }
    const config = await parseObject(raw, baseDir);
    expect(config.warnings).toEqual([
      'gateway.yaml: api_keys[alice].models: "suport-bot" matches no model of any channel',
      'gateway.yaml: api_keys[alice].models: "sales-*" matches no model of any channel',
    ]);
  });

  it("warns about an expired TLS certificate", async () => {
    const old = selfSignedCertificate(tlsKey, {
      from: new Date("2020-01-01T00:00:00Z"),
      to: new Date("2021-01-01T00:00:00Z"),
    });
    const raw = validConfig(key);
    raw.server = { tls: { cert: old, key: tlsKey.pkcs8 } };
    const config = await parseObject(raw, baseDir);
    expect(config.warnings).toEqual([
      "gateway.yaml: server.tls.cert: the certificate expired on Jan  1 00:00:00 2021 GMT",
    ]);
  });
});
