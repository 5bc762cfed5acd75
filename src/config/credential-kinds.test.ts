// Personal access token channels, the cross-account and enterprise token endpoints, and
// per-end-user sessions, as the loader reads them (coze-api.md §11, §12).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  configErrorHarness,
  createTempDir,
  parseObject,
  type RawConfig,
  type TempDir,
  validConfig,
} from "../../test/support/config-fixtures.js";

const { key, expectError, rejects } = configErrorHarness();
const pat = `pat_${"Ab3".repeat(21)}x`;

let tmp: TempDir;
beforeAll(async () => {
  tmp = await createTempDir();
});
afterAll(() => tmp.cleanup());

/** The valid config with channel 0's credentials replaced by a PAT (plus `extra`). */
function patConfig(extra: Record<string, unknown> = {}): RawConfig {
  const config = validConfig(key);
  const channel = config.channels[0];
  if (channel === undefined) throw new Error("no channel");
  channel.credentials = {
    personal_access_token: pat,
    default_bot_id: "7390000000000000001",
    ...extra,
  };
  return config;
}

function patRejects(edit: (c: RawConfig) => void, env = {}): Promise<unknown> {
  const config = patConfig();
  edit(config);
  return parseObject(config, "/nonexistent", env);
}

describe("personal access token channels", () => {
  it("reads the token inline, from env: and from file: (final newline dropped)", async () => {
    const file = await tmp.write("coze.pat", `${pat}\n`);
    for (const [value, env] of [
      [pat, {}],
      ["env:COZE_PAT", { COZE_PAT: ` ${pat} ` }],
      [`file:${file}`, {}],
    ] as const) {
      const config = await parseObject(patConfig({ personal_access_token: value }), tmp.dir, env);
      const [channel] = config.channels;
      expect(channel?.credential).toEqual({ kind: "pat", token: pat });
      expect(channel?.defaultBotId).toBe("7390000000000000001");
      expect(channel?.sessions).toBeUndefined();
    }
  });

  it("reads the token from settings JSON, as pasted or referenced", async () => {
    const settings = JSON.stringify({
      personal_access_token: pat,
      space_id: "7300000000000000000",
    });
    const config = validConfig(key);
    const channel = config.channels[0];
    if (channel === undefined) throw new Error("no channel");
    channel.credentials = "env:COZE_SETTINGS";
    channel.models = [{ name: "bot", bot_id: "7390000000000000002" }];
    const loaded = await parseObject(config, tmp.dir, { COZE_SETTINGS: settings });
    expect(loaded.channels[0]?.credential).toEqual({ kind: "pat", token: pat });
    expect(loaded.channels[0]?.spaceId).toBe("7300000000000000000");
  });

  it("refuses an OAuth app field beside the token", async () => {
    for (const field of [
      "client_id",
      "public_key_id",
      "private_key",
      "account_id",
      "enterprise_id",
    ]) {
      await expectError(
        parseObject(patConfig({ [field]: field === "private_key" ? key.pkcs8 : "123" }), "/x"),
        `gateway.yaml: channels[cn-main].credentials.${field}: cannot be combined with personal_access_token: a channel authenticates with a personal access token or with an OAuth app, not both`,
      );
    }
  });

  it("refuses a token with spaces or control characters, without quoting it", async () => {
    for (const bad of [`${pat} ${pat}`, `${pat}\r\nX-Injected: 1`, "pat_\u00e9"]) {
      const error = await expectError(
        patRejects((c) => {
          (c.channels[0]?.credentials as Record<string, unknown>).personal_access_token = bad;
        }),
        "gateway.yaml: channels[cn-main].credentials.personal_access_token: must be a personal access token: printable characters without spaces, at most 4096, inline, env:NAME or file:PATH",
      );
      expect(error.message).not.toContain(pat);
    }
    await expectError(
      patRejects(
        (c) => {
          (c.channels[0]?.credentials as Record<string, unknown>).personal_access_token =
            "env:COZE_PAT";
        },
        { COZE_PAT: "two words" },
      ),
      "gateway.yaml: channels[cn-main].credentials.personal_access_token: must be a personal access token: printable characters without spaces, at most 4096, inline, env:NAME or file:PATH (from env:COZE_PAT)",
    );
  });

  it("names the variable when an env: token is unset", async () => {
    await expectError(
      patRejects((c) => {
        (c.channels[0]?.credentials as Record<string, unknown>).personal_access_token =
          "env:COZE_PAT";
      }),
      "gateway.yaml: channels[cn-main].credentials.personal_access_token: environment variable COZE_PAT is not set (env:COZE_PAT)",
    );
  });

  it("refuses token, session_name and sessions on a PAT channel, saying why", async () => {
    const cases: Array<[string, unknown, string]> = [
      [
        "token",
        { duration_seconds: 3600 },
        "a personal access token is sent as it is: there is no access token to request or refresh",
      ],
      [
        "session_name",
        "app",
        "a personal access token carries no session_name: only OAuth JWT tokens do",
      ],
      [
        "sessions",
        { per_user: true },
        "a personal access token carries no session_name: only OAuth JWT tokens do",
      ],
    ];
    for (const [field, value, why] of cases) {
      await expectError(
        patRejects((c) => {
          (c.channels[0] as Record<string, unknown>)[field] = value;
        }),
        `gateway.yaml: channels[cn-main].${field}: applies to OAuth JWT channels only; ${why}`,
      );
    }
  });

  it("asks for the app id or a token when the credentials have neither", async () => {
    await expectError(
      rejects((c) => {
        if (c.channels[0]) c.channels[0].credentials = { default_bot_id: "7390000000000000001" };
      }),
      "gateway.yaml: channels[cn-main].credentials.client_id: is missing; expected the OAuth app id (or personal_access_token instead of the OAuth app)",
    );
  });
});

describe("token endpoint variants", () => {
  const withCreds = (extra: Record<string, unknown>) => {
    const config = validConfig(key);
    Object.assign(config.channels[0]?.credentials as Record<string, unknown>, extra);
    return config;
  };

  it("reads account_id and enterprise_id into the credential", async () => {
    const account = await parseObject(withCreds({ account_id: "7300000000000000001" }), "/x");
    expect(account.channels[0]?.credential).toMatchObject({ accountId: "7300000000000000001" });
    const enterprise = await parseObject(withCreds({ enterprise_id: "volcano_210195" }), "/x");
    expect(enterprise.channels[0]?.credential).toMatchObject({ enterpriseId: "volcano_210195" });
    const plain = await parseObject(withCreds({ account_id: "", enterprise_id: "" }), "/x");
    expect(plain.channels[0]?.credential).not.toHaveProperty("accountId");
    expect(plain.channels[0]?.credential).not.toHaveProperty("enterpriseId");
  });

  it("refuses both, a non-digit account and an enterprise id with other characters", async () => {
    await expectError(
      parseObject(withCreds({ account_id: "7300000000000000001", enterprise_id: "e1" }), "/x"),
      "gateway.yaml: channels[cn-main].credentials.enterprise_id: cannot be combined with account_id: a channel buys its tokens for one account or one enterprise",
    );
    await expectError(
      parseObject(withCreds({ account_id: "acct-1" }), "/x"),
      'gateway.yaml: channels[cn-main].credentials.account_id: must be a string of digits in quotes, e.g. "7390000000000000001"',
    );
    await expectError(
      parseObject(withCreds({ enterprise_id: "volcano/../x" }), "/x"),
      "gateway.yaml: channels[cn-main].credentials.enterprise_id: must be an enterprise id: 1 to 128 letters, digits, _, . and -, e.g. volcano_210195",
    );
  });
});

describe("sessions", () => {
  it("defaults to one session per key, and reads per_user and max_cached", async () => {
    const plain = await parseObject(validConfig(key), "/x");
    expect(plain.channels[0]?.sessions).toEqual({ perUser: false, maxCached: 1000 });
    const config = validConfig(key);
    (config.channels[0] as Record<string, unknown>).sessions = { per_user: true, max_cached: 5 };
    const loaded = await parseObject(config, "/x");
    expect(loaded.channels[0]?.sessions).toEqual({ perUser: true, maxCached: 5 });
  });

  it("refuses unknown keys and values out of range", async () => {
    await expectError(
      rejects((c) => {
        (c.channels[0] as Record<string, unknown>).sessions = { per_users: true };
      }),
      "gateway.yaml: channels[cn-main].sessions.per_users: is not a known field (did you mean per_user?); expected one of: per_user, max_cached",
    );
    await expectError(
      rejects((c) => {
        (c.channels[0] as Record<string, unknown>).sessions = { max_cached: 0 };
      }),
      "gateway.yaml: channels[cn-main].sessions.max_cached: must be an integer from 1 to 100000",
    );
    await expectError(
      rejects((c) => {
        (c.channels[0] as Record<string, unknown>).sessions = { per_user: "yes" };
      }),
      "gateway.yaml: channels[cn-main].sessions.per_user: must be true or false, not a string",
    );
  });
});
