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

  it("takes the old model list as it is: plain names and workflow:, workflow-async:, chatflow:, bot: entries", async () => {
    const old = [
      "support-bot",
      "workflow:7391000000000000001",
      "workflow-async:7391000000000000002",
      "chatflow:7391000000000000006",
      "bot:7390000000000000009",
    ];
    const asList = await loads((c) => {
      const ch = c.channels[0];
      if (ch !== undefined) ch.models = old;
    });
    const routes = asList.models.map((m) => [m.name, m.channel, m.kind, m.targetId, m.inputField]);
    expect(routes).toEqual([
      ["support-bot", "cn-main", "bot", "7390000000000000001", "input"],
      ["workflow:7391000000000000001", "cn-main", "workflow", "7391000000000000001", "input"],
      [
        "workflow-async:7391000000000000002",
        "cn-main",
        "workflow_async",
        "7391000000000000002",
        "input",
      ],
      ["chatflow:7391000000000000006", "cn-main", "chatflow", "7391000000000000006", "input"],
      ["bot:7390000000000000009", "cn-main", "bot", "7390000000000000009", "input"],
    ]);
    // new-api kept the list as one comma-separated text; pasted so, it reads the same.
    const asText = await loads((c) => {
      const ch = c.channels[0];
      if (ch !== undefined) ch.models = ` ${old.join(", ")},`;
    });
    expect(asText.models).toEqual(asList.models);
  });

  it("runs a listed workflow:{id} on the channel that lists it; other ids stay on the default channel", async () => {
    const config = await loads((c) => {
      const first = c.channels[0];
      if (first !== undefined) first.default = true;
      c.channels.push(second({ models: ["workflow:7391000000000000005"] }));
    });
    expect(resolveRoutes(config, "workflow:7391000000000000005").map((r) => r.channel)).toEqual([
      "cn-backup",
    ]);
    expect(resolveRoutes(config, "workflow:7391000000000000001").map((r) => r.channel)).toEqual([
      "cn-main",
    ]);
  });

  it("shares a workflow:{id} listed on two channels as failover, with weight and input_field", async () => {
    const config = await loads((c) => {
      const first = c.channels[0];
      if (first !== undefined) {
        first.default = true;
        first.models = ["workflow:7391000000000000001"];
      }
      c.channels.push(
        second({
          models: [{ name: "workflow:7391000000000000001", weight: 3, input_field: "text" }],
        }),
      );
    });
    expect(
      resolveRoutes(config, "workflow:7391000000000000001").map((r) => [
        r.channel,
        r.weight,
        r.inputField,
      ]),
    ).toEqual([
      ["cn-main", 1, "input"],
      ["cn-backup", 3, "text"],
    ]);
  });

  it("needs no default_bot_id for bot:{id} and workflow entries", async () => {
    const config = await loads((c) => {
      const credentials = creds(c);
      delete credentials.default_bot_id;
      const ch = c.channels[0];
      if (ch !== undefined) ch.models = ["bot:7390000000000000009", "workflow:7391000000000000001"];
    });
    expect(config.models.map((m) => m.kind)).toEqual(["bot", "workflow"]);
  });

  it("refuses a dynamic name whose id is not 1 to 32 digits", async () => {
    for (const [name, prefix] of [
      ["workflow:abc", "workflow:"],
      ["workflow-async:", "workflow-async:"],
      ["bot:7390000000000000009x", "bot:"],
      [`chatflow:${"1".repeat(33)}`, "chatflow:"],
    ]) {
      await expectError(
        channel((ch) => {
          ch.models = [name];
        }),
        `gateway.yaml: channels[cn-main].models[${name}]: must be ${prefix}{id} with a Coze id of 1 to 32 digits`,
      );
    }
  });

  it("refuses ids and modes on a dynamic name, which gives them itself", async () => {
    for (const key of ["bot_id", "workflow_id", "mode"]) {
      await expectError(
        channel((ch) => {
          ch.models = [
            { name: "workflow:7391000000000000001", [key]: key === "mode" ? "async" : "1" },
          ];
        }),
        `gateway.yaml: channels[cn-main].models[workflow:7391000000000000001].${key}: does not apply to a workflow:{id} name, which gives the id and kind itself; remove it`,
      );
    }
    await expectError(
      channel((ch) => {
        ch.models = [{ name: "bot:7390000000000000009", input_field: "text" }];
      }),
      "gateway.yaml: channels[cn-main].models[bot:7390000000000000009].input_field: applies to workflows only; remove it",
    );
  });

  it("refuses a dynamic name listed twice in one channel", async () => {
    await expectError(
      channel((ch) => {
        ch.models = ["workflow:7391000000000000001", { name: "workflow:7391000000000000001" }];
      }),
      "gateway.yaml: channels[cn-main].models[workflow:7391000000000000001]: is listed twice in this channel",
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
