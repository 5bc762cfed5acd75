import { describe, expect, it } from "vitest";
import {
  aliceKey,
  configErrorHarness,
  creds,
  leaks,
  testServerSecret,
} from "../../test/support/config-fixtures.js";
import { ConfigError } from "./config-error.js";

// A reload keeps the old config and logs every problem of the new file (issue 15): the loader
// reads on past a bad field, entry or section and reports them all, in file order.
const { key, rejects } = configErrorHarness();

async function problems(promise: Promise<unknown>): Promise<ConfigError> {
  const err = await promise.then(
    () => expect.fail("accepted"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

describe("a file with several problems", () => {
  it("reports each of them, in file order, the first as the error itself", async () => {
    const err = await problems(
      rejects((c) => {
        c.chanels = [];
        c.server = { port: 70000, idle_timeout_ms: 5, prot: 1 };
        c.server_secret = "short";
        c.api_keys.push(
          { name: "bob", key: "too-short" },
          { name: "carol", key: `${aliceKey}-carol`, model: ["x"] },
          { name: "dave", key: `${aliceKey}-dave`, limits: { requests_per_minute: 0 } },
        );
        c.state = { store: "disk" };
        c.tracing = { otlp_endpoint: "ftp://collector" };
        c.interrupts = { ttl_seconds: -1 };
        const main = c.channels[0];
        if (main === undefined) throw new Error("no channel");
        main.base_url = "ftp://api.coze.cn";
        main.polling = { interval_ms: 1 };
        main.limits = { max_concurrent: 0 };
        // Not read: discovery needs the credentials' space_id, and they could not be read.
        main.discovery = { interval_ms: 1 };
        creds(c).client_id = "";
        c.channels.push({
          name: "intl",
          credentials: { ...creds(c), client_id: "1127900106118" },
          models: ["good-bot", { name: "both", bot_id: "1", workflow_id: "2" }],
        });
        c.channels.push({
          name: "eu",
          credentials: { ...creds(c), client_id: "1127900106119" },
          discovery: { interval_ms: 1 },
        });
      }),
    );
    const messages = err.all.map((e) => e.message);
    expect(messages).toEqual([
      "gateway.yaml: chanels: is not a known field (did you mean channels?); expected one of: server, server_secret, api_keys, channels, tracing, state, interrupts",
      "gateway.yaml: server.prot: is not a known field (did you mean port?); expected one of: host, port, tls, cors_origins, body_limit_bytes, shutdown_grace_ms, playground, idle_timeout_ms, headers_timeout_ms, request_timeout_ms, max_concurrent_streams, max_streams_per_key, metrics, trusted_proxies",
      "gateway.yaml: server.port: must be an integer from 0 to 65535",
      "gateway.yaml: server.idle_timeout_ms: must be an integer from 1000 to 3600000",
      expect.stringMatching(/^gateway\.yaml: server_secret: .*at least 32/),
      expect.stringMatching(/^gateway\.yaml: api_keys\[bob\]\.key: .*at least 16/),
      "gateway.yaml: api_keys[carol].model: is not a known field (did you mean models?); expected one of: name, key, sha256, models, raw_coze_ids, limits",
      "gateway.yaml: api_keys[dave].limits.requests_per_minute: must be an integer from 1 to 1000000",
      expect.stringMatching(
        /^gateway\.yaml: channels\[cn-main\]\.base_url: must be an http\(s\) URL/,
      ),
      expect.stringMatching(/^gateway\.yaml: channels\[cn-main\]\.credentials\.client_id: /),
      "gateway.yaml: channels[cn-main].polling.interval_ms: must be an integer from 100 to 600000",
      "gateway.yaml: channels[cn-main].limits.max_concurrent: must be an integer from 1 to 100000",
      "gateway.yaml: channels[intl].models[both]: has both bot_id and workflow_id; give one",
      "gateway.yaml: channels[eu].discovery.interval_ms: must be an integer from 10000 to 86400000",
      "gateway.yaml: tracing.otlp_endpoint: must be an http or https URL, e.g. http://127.0.0.1:4318/v1/traces (no query)",
      "gateway.yaml: state.store: must be memory or redis",
      "gateway.yaml: interrupts.ttl_seconds: must be an integer from 0 to 604800",
    ]);
    expect(err.message).toBe(messages[0]);
    expect(err.all[0]).toBe(err);
    for (const message of messages) {
      for (const secret of [key.pkcs8, key.pkcs1, aliceKey, testServerSecret, "too-short"]) {
        expect(leaks(message, secret), message).toBe(false);
      }
    }
  });

  it("names no default channel problem while a channel could not be read", async () => {
    const err = await problems(
      rejects((c) => {
        c.channels.push({ name: "intl", credentials: {}, models: ["other-bot"] });
      }),
    );
    // Without default: true the list would also be wrong, but which channel was meant to be
    // the default is unknown while one of them is unreadable: only its own problem is named.
    expect(err.all).toHaveLength(1);
    expect(err.message).toMatch(/^gateway\.yaml: channels\[intl\]\.credentials/);
  });

  it("is one problem, its own all, when there is only one", async () => {
    const err = await problems(
      rejects((c) => {
        c.server = { port: -1 };
      }),
    );
    expect(err.all).toEqual([err]);
  });
});
