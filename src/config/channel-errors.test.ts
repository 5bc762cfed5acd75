import { describe, expect, it } from "vitest";
import { configErrorHarness, type RawConfig } from "../../test/support/config-fixtures.js";

// Keys generated at test time; no key is committed.
const { key, expectError, rejects } = configErrorHarness();

describe("channels", () => {
  const channel = (edit: (ch: RawConfig["channels"][number]) => void) =>
    rejects((c) => {
      const ch = c.channels[0];
      if (ch !== undefined) edit(ch);
    });
  const second = (extra: Record<string, unknown> = {}) => ({
    name: "cn-backup",
    credentials: { client_id: "1127900106118", public_key_id: "kid-2", private_key: key.pkcs1 },
    ...extra,
  });

  it("requires channels", async () => {
    await expectError(
      rejects((c) => {
        delete (c as Partial<RawConfig>).channels;
      }),
      "gateway.yaml: channels: is missing; expected a list of channels, at least one",
    );
  });

  it("refuses a channel name with capitals and spaces, naming it by index", async () => {
    const err = await expectError(
      channel((ch) => {
        ch.name = "CN Main";
      }),
      "gateway.yaml: channels[0].name: must be a channel name: 1 to 64 lower-case letters, digits, _ and -, starting with a letter or digit",
    );
    expect(err.channel).toBeUndefined();
  });

  it("refuses two channels with one name", async () => {
    await expectError(
      rejects((c) => {
        c.channels.push({ ...second(), name: "cn-main" });
      }),
      "gateway.yaml: channels[1].name: cn-main is already the name of channels[0]",
    );
  });

  it("refuses a typo in a channel key, naming the channel", async () => {
    const err = await expectError(
      channel((ch) => {
        ch.baseUrl = "https://api.coze.com";
      }),
      "gateway.yaml: channels[cn-main].baseUrl: is not a known field (did you mean base_url?); expected one of: name, base_url, credentials, session_name, sessions, default, token, polling, timeouts, models, limits, discovery",
    );
    expect(err.channel).toBe("cn-main");
    expect(err.field).toBe("channels[cn-main].baseUrl");
    expect(err.file).toBe("gateway.yaml");
  });

  it("refuses a base URL that is not http(s)", async () => {
    await expectError(
      channel((ch) => {
        ch.base_url = "ftp://api.coze.cn";
      }),
      "gateway.yaml: channels[cn-main].base_url: must be an http(s) URL without query or fragment, e.g. https://api.coze.cn",
    );
  });

  it("refuses a base URL with a query", async () => {
    await expectError(
      channel((ch) => {
        ch.base_url = "https://api.coze.cn/?region=cn";
      }),
      "gateway.yaml: channels[cn-main].base_url: must be an http(s) URL without query or fragment, e.g. https://api.coze.cn",
    );
  });

  it("refuses a token duration under a minute", async () => {
    await expectError(
      channel((ch) => {
        ch.token = { duration_seconds: 30 };
      }),
      "gateway.yaml: channels[cn-main].token.duration_seconds: must be an integer from 60 to 86399",
    );
  });

  it("refuses a refresh margin over half the token's lifetime, which would not be the one in force", async () => {
    await expectError(
      channel((ch) => {
        ch.token = { duration_seconds: 600, refresh_margin_seconds: 301 };
      }),
      "gateway.yaml: channels[cn-main].token.refresh_margin_seconds: must be at most half of token.duration_seconds (600), that is 300",
    );
  });

  it("takes a margin of exactly half, and gives a short token half its life by default", async () => {
    const margin = async (token: Record<string, number>) =>
      (
        (await channel((ch) => {
          ch.token = token;
        })) as { channels: { refreshMarginMs: number }[] }
      ).channels[0]?.refreshMarginMs;
    expect(await margin({ duration_seconds: 600, refresh_margin_seconds: 300 })).toBe(300_000);
    expect(await margin({ duration_seconds: 60 })).toBe(30_000);
    expect(await margin({ duration_seconds: 3600 })).toBe(300_000);
  });

  it("refuses a typo in the token section", async () => {
    await expectError(
      channel((ch) => {
        ch.token = { duration: 600 };
      }),
      "gateway.yaml: channels[cn-main].token.duration: is not a known field (did you mean duration_seconds?); expected one of: duration_seconds, refresh_margin_seconds",
    );
  });

  it("refuses a fractional polling interval", async () => {
    await expectError(
      channel((ch) => {
        ch.polling = { interval_ms: 1500.5 };
      }),
      "gateway.yaml: channels[cn-main].polling.interval_ms: must be an integer from 100 to 600000",
    );
  });

  it("refuses a typo in the polling section", async () => {
    await expectError(
      channel((ch) => {
        ch.polling = { max_poll: 10 };
      }),
      "gateway.yaml: channels[cn-main].polling.max_poll: is not a known field (did you mean max_polls?); expected one of: interval_ms, max_polls, deadline_ms",
    );
  });

  it("refuses a typo in the timeouts section", async () => {
    await expectError(
      channel((ch) => {
        ch.timeouts = { conect_ms: 1000 };
      }),
      "gateway.yaml: channels[cn-main].timeouts.conect_ms: is not a known field (did you mean connect_ms?); expected one of: connect_ms, headers_ms, stream_idle_ms, request_ms, sync_run_ms",
    );
  });

  it("refuses a zero timeout", async () => {
    await expectError(
      channel((ch) => {
        ch.timeouts = { sync_run_ms: 0 };
      }),
      "gateway.yaml: channels[cn-main].timeouts.sync_run_ms: must be an integer from 1 to 86400000",
    );
  });

  it("refuses a default that is not true or false", async () => {
    await expectError(
      channel((ch) => {
        ch.default = "yes please";
      }),
      "gateway.yaml: channels[cn-main].default: must be true or false, not a string",
    );
  });

  it("requires a default among several channels", async () => {
    await expectError(
      rejects((c) => {
        c.channels.push(second());
      }),
      "gateway.yaml: channels: has 2 channels but none has default: true; mark the one that serves workflow:, workflow-async:, chatflow: and bot: names",
    );
  });

  it("refuses two default channels", async () => {
    await expectError(
      rejects((c) => {
        const first = c.channels[0];
        if (first !== undefined) first.default = true;
        c.channels.push(second({ default: true }));
      }),
      "gateway.yaml: channels[cn-backup].default: channels[cn-main] is already the default; only one channel may be",
    );
  });
});
