import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import {
  configErrorHarness,
  creds,
  type RawConfig,
  validConfig,
} from "../../test/support/config-fixtures.js";
import { parseConfig } from "./parse-config.js";

// Keys generated at test time; no key is committed.
const { key, ecPem, expectError, rejects } = configErrorHarness();
const publicPem = key.publicKey.export({ type: "spki", format: "pem" }).toString();
const encryptedPem = key.privateKey
  .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "not-a-secret" })
  .toString();

function text(yaml: string, file = "gateway.yaml"): Promise<unknown> {
  return parseConfig(yaml, { file, baseDir: "/nonexistent", env: {} });
}

describe("channel credentials", () => {
  const channel = (edit: (ch: RawConfig["channels"][number]) => void) =>
    rejects((c) => {
      const ch = c.channels[0];
      if (ch !== undefined) edit(ch);
    });
  const credentials = (edit: (k: Record<string, unknown>) => void) =>
    rejects((c) => edit(creds(c)));

  it("requires credentials", async () => {
    await expectError(
      channel((ch) => {
        delete (ch as Partial<typeof ch>).credentials;
      }),
      "gateway.yaml: channels[cn-main].credentials: is missing; expected the channel settings (client_id, public_key_id, private_key, space_id, default_bot_id; or personal_access_token instead of the OAuth app) as a mapping, as their JSON text, env:NAME or file:PATH",
    );
  });

  it("refuses settings JSON that does not parse, without quoting it", async () => {
    const settingsHead = '{"client_id": "1127900106117", "private_key": ';
    await expectError(
      channel((ch) => {
        ch.credentials = `${settingsHead}${JSON.stringify(key.pkcs8)},}`;
      }),
      // The error is at the closing brace after the trailing comma.
      `gateway.yaml: channels[cn-main].credentials: is not valid settings JSON (error at line 1, column ${settingsHead.length + JSON.stringify(key.pkcs8).length + 2}); expected the channel settings (client_id, public_key_id, private_key, space_id, default_bot_id; or personal_access_token instead of the OAuth app) as a mapping, as their JSON text, env:NAME or file:PATH`,
    );
  });

  it("requires client_id", async () => {
    await expectError(
      credentials((k) => {
        delete k.client_id;
      }),
      "gateway.yaml: channels[cn-main].credentials.client_id: is missing; expected the OAuth app id",
    );
  });

  it("refuses a client_id written as a number", async () => {
    await expectError(
      credentials((k) => {
        k.client_id = 1127900106117;
      }),
      "gateway.yaml: channels[cn-main].credentials.client_id: must be the OAuth app id, not a number (write it in quotes)",
    );
  });

  it("refuses an env: reference where only values are read", async () => {
    await expectError(
      credentials((k) => {
        k.public_key_id = "env:COZE_KID";
      }),
      "gateway.yaml: channels[cn-main].credentials.public_key_id: cannot be an env: or file: reference; write the value itself",
    );
  });

  it("refuses a private key that is not PEM, hinting at file:", async () => {
    await expectError(
      credentials((k) => {
        k.private_key = "./keys/coze.pem";
      }),
      "gateway.yaml: channels[cn-main].credentials.private_key: is not an RSA private key in PEM form: expected a -----BEGIN PRIVATE KEY----- block; to read it from a file, write file:PATH",
    );
  });

  it("refuses a public key in place of the private key", async () => {
    await expectError(
      credentials((k) => {
        k.private_key = publicPem;
      }),
      "gateway.yaml: channels[cn-main].credentials.private_key: PEM holds a public key, not a private key",
    );
  });

  it("refuses an encrypted private key", async () => {
    await expectError(
      credentials((k) => {
        k.private_key = encryptedPem;
      }),
      "gateway.yaml: channels[cn-main].credentials.private_key: is encrypted; provide it without a passphrase",
    );
  });

  it("refuses an EC private key", async () => {
    await expectError(
      credentials((k) => {
        k.private_key = ecPem;
      }),
      "gateway.yaml: channels[cn-main].credentials.private_key: is not an RSA key (it is ec)",
    );
  });

  it("refuses a PEM whose body is damaged, without quoting it", async () => {
    await expectError(
      credentials((k) => {
        k.private_key = key.pkcs8.replace(/\n[A-Za-z0-9+/]{8}/, "\n!!!!!!!!");
      }),
      "gateway.yaml: channels[cn-main].credentials.private_key: PEM body is not valid base64",
    );
  });

  it("refuses a default_bot_id that is not digits", async () => {
    await expectError(
      credentials((k) => {
        k.default_bot_id = "bot-7390";
      }),
      'gateway.yaml: channels[cn-main].credentials.default_bot_id: must be a string of digits in quotes, e.g. "7390000000000000001"',
    );
  });

  it("refuses an unquoted 19-digit id, which has already lost digits", async () => {
    const yaml = stringify(validConfig(key));
    const unquoted = yaml.replace(
      'default_bot_id: "7390000000000000001"',
      "default_bot_id: 7390000000000000001",
    );
    expect(unquoted).not.toBe(yaml);
    await expectError(
      text(unquoted),
      'gateway.yaml: channels[cn-main].credentials.default_bot_id: must be a string of digits in quotes, e.g. "7390000000000000001"; an unquoted number loses digits',
    );
  });
});
