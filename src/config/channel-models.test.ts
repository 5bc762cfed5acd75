import { describe, expect, it } from "vitest";
import {
  configErrorHarness,
  creds,
  parseObject,
  type RawConfig,
  validConfig,
} from "../../test/support/config-fixtures.js";
import { resolveRoutes } from "./resolve-model.js";

// Keys generated at test time; no key is committed.
const { key, expectError, rejects } = configErrorHarness();

/** Loads the valid config after `edit`; resolves to the config (used for what must load). */
function loads(edit: (c: RawConfig) => void) {
  const config = validConfig(key);
  edit(config);
  return parseObject(config, "/nonexistent", {});
}

describe("channel models", () => {
  const channel = (edit: (ch: RawConfig["channels"][number]) => void) =>
    rejects((c) => {
      const ch = c.channels[0];
      if (ch !== undefined) edit(ch);
    });
  const credentials = (edit: (k: Record<string, unknown>) => void) =>
    rejects((c) => edit(creds(c)));
  const second = (extra: Record<string, unknown> = {}) => ({
    name: "cn-backup",
    credentials: { client_id: "1127900106118", public_key_id: "kid-2", private_key: key.pkcs1 },
    ...extra,
  });

  it("refuses a plain model on a channel without default_bot_id", async () => {
    await expectError(
      credentials((k) => {
        delete k.default_bot_id;
      }),
      "gateway.yaml: channels[cn-main].models[support-bot]: needs a bot_id or workflow_id, since the channel's credentials have no default_bot_id",
    );
  });

  it("refuses a model with both bot_id and workflow_id", async () => {
    await expectError(
      channel((ch) => {
        ch.models = [{ name: "mixed", bot_id: "1", workflow_id: "2" }];
      }),
      "gateway.yaml: channels[cn-main].models[mixed]: has both bot_id and workflow_id; give one",
    );
  });

  it("refuses a workflow mode that is an Object.prototype member", async () => {
    await expectError(
      channel((ch) => {
        ch.models = [{ name: "report", workflow_id: "7391000000000000001", mode: "toString" }];
      }),
      "gateway.yaml: channels[cn-main].models[report].mode: must be one of sync, async, chatflow",
    );
  });

  it("refuses an unknown workflow mode", async () => {
    await expectError(
      channel((ch) => {
        ch.models = [{ name: "report", workflow_id: "7391000000000000001", mode: "stream" }];
      }),
      "gateway.yaml: channels[cn-main].models[report].mode: must be one of sync, async, chatflow",
    );
  });

  it("refuses a workflow mode on a bot model", async () => {
    await expectError(
      channel((ch) => {
        ch.models = [{ name: "sales-bot", bot_id: "7390000000000000009", mode: "async" }];
      }),
      "gateway.yaml: channels[cn-main].models[sales-bot].mode: applies to workflows only; add workflow_id or remove it",
    );
  });

  it("refuses a model name with a dynamic prefix", async () => {
    await expectError(
      channel((ch) => {
        ch.models = ["workflow:7391000000000000001"];
      }),
      "gateway.yaml: channels[cn-main].models[0]: must not start with workflow:: workflow:{id} names are routed to the default channel without an entry",
    );
  });

  it("refuses a model name with spaces", async () => {
    await expectError(
      channel((ch) => {
        ch.models = [{ name: "support bot" }];
      }),
      "gateway.yaml: channels[cn-main].models[0].name: must be a model name of 1 to 128 characters without spaces or *",
    );
  });

  it("lets several channels serve one model name, with weights, for failover", async () => {
    const config = await loads((c) => {
      const first = c.channels[0];
      if (first !== undefined) first.default = true;
      c.channels.push(
        second({ models: [{ name: "support-bot", bot_id: "7390000000000000002", weight: 3 }] }),
      );
    });
    expect(
      resolveRoutes(config, "support-bot").map((r) => [r.channel, r.targetId, r.weight]),
    ).toEqual([
      ["cn-main", "7390000000000000001", 1],
      ["cn-backup", "7390000000000000002", 3],
    ]);
  });

  it("refuses a name that two channels serve as different kinds", async () => {
    await expectError(
      rejects((c) => {
        const first = c.channels[0];
        if (first !== undefined) first.default = true;
        c.channels.push(
          second({ models: [{ name: "support-bot", workflow_id: "7391000000000000002" }] }),
        );
      }),
      "gateway.yaml: channels[cn-backup].models[support-bot]: is a workflow here but a bot on channels[cn-main]; a name served by several channels must run the same kind",
    );
  });

  it("refuses a weight outside 1 to 1000", async () => {
    await expectError(
      channel((ch) => {
        ch.models = [{ name: "sales-bot", bot_id: "7390000000000000009", weight: 0 }];
      }),
      "gateway.yaml: channels[cn-main].models[sales-bot].weight: must be an integer from 1 to 1000",
    );
  });

  it("refuses a model listed twice in one channel", async () => {
    await expectError(
      channel((ch) => {
        ch.models = ["support-bot", { name: "support-bot", bot_id: "7390000000000000002" }];
      }),
      "gateway.yaml: channels[cn-main].models[support-bot]: is listed twice in this channel",
    );
  });

  it("refuses a typo in a model entry", async () => {
    await expectError(
      channel((ch) => {
        ch.models = [{ name: "report", workflow_id: "7391000000000000001", input: "query" }];
      }),
      "gateway.yaml: channels[cn-main].models[report].input: is not a known field (did you mean input_field?); expected one of: name, bot_id, workflow_id, mode, input_field, weight",
    );
  });

  it("refuses a model entry that is a number", async () => {
    await expectError(
      channel((ch) => {
        ch.models = [7390];
      }),
      "gateway.yaml: channels[cn-main].models[0]: must be a model name, or a mapping with name and bot_id or workflow_id (plus mode, input_field, weight), not a number",
    );
  });
});
