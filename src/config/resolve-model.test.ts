import { describe, expect, it } from "vitest";
import {
  generateRsaKey,
  parseObject,
  type RawConfig,
  validConfig,
} from "../../test/support/config-fixtures.js";
import type { GatewayConfig } from "./gateway-config.js";
import { defaultChannel, resolveModel } from "./resolve-model.js";

const key = generateRsaKey();

// Two channels: cn-main (the default) and com-intl, with every kind of explicit route.
async function twoChannels(): Promise<GatewayConfig> {
  const raw: RawConfig = validConfig(key);
  const main = raw.channels[0];
  if (main !== undefined) {
    main.default = true;
    main.models = [
      "support-bot",
      { name: "sales-bot", bot_id: "7390000000000000009" },
      { name: "weekly-report", workflow_id: "7391000000000000001", input_field: "query" },
      { name: "long-report", workflow_id: "7391000000000000002", mode: "async" },
      { name: "helpdesk", workflow_id: "7391000000000000003", mode: "chatflow" },
    ];
  }
  raw.channels.push({
    name: "com-intl",
    base_url: "https://api.coze.com",
    credentials: { client_id: "2", public_key_id: "k2", private_key: key.pkcs8 },
    models: [{ name: "intl-bot", bot_id: "7490000000000000001" }],
  });
  return parseObject(raw, "/nonexistent");
}

describe("resolveModel", () => {
  it("routes a plain model to the channel's default bot", async () => {
    expect(resolveModel(await twoChannels(), "support-bot")).toEqual({
      name: "support-bot",
      channel: "cn-main",
      kind: "bot",
      targetId: "7390000000000000001",
      inputField: "input",
      weight: 1,
    });
  });

  it("routes explicit bot, workflow, async workflow and chatflow entries", async () => {
    const config = await twoChannels();
    const pick = (name: string) => {
      const route = resolveModel(config, name);
      return [route?.channel, route?.kind, route?.targetId, route?.inputField];
    };
    expect(pick("sales-bot")).toEqual(["cn-main", "bot", "7390000000000000009", "input"]);
    expect(pick("weekly-report")).toEqual(["cn-main", "workflow", "7391000000000000001", "query"]);
    expect(pick("long-report")).toEqual([
      "cn-main",
      "workflow_async",
      "7391000000000000002",
      "input",
    ]);
    expect(pick("helpdesk")).toEqual(["cn-main", "chatflow", "7391000000000000003", "input"]);
    expect(pick("intl-bot")).toEqual(["com-intl", "bot", "7490000000000000001", "input"]);
  });

  it("routes each dynamic prefix to the default channel, keeping the 19-digit id exact", async () => {
    const config = await twoChannels();
    const id = "7391234567890123457"; // above 2^53: a number would change it
    const cases = [
      [`workflow:${id}`, "workflow"],
      [`workflow-async:${id}`, "workflow_async"],
      [`chatflow:${id}`, "chatflow"],
      [`bot:${id}`, "bot"],
    ] as const;
    for (const [name, kind] of cases) {
      expect(resolveModel(config, name)).toEqual({
        name,
        channel: "cn-main",
        kind,
        targetId: id,
        inputField: "input",
        weight: 1,
      });
    }
  });

  it("sends dynamic names to a lone channel that is not marked default", async () => {
    const config = await parseObject(validConfig(key), "/nonexistent");
    expect(resolveModel(config, "workflow:1")?.channel).toBe("cn-main");
    expect(defaultChannel(config)?.name).toBe("cn-main");
  });

  it("finds nothing for an unknown plain name or a dynamic id that is not digits", async () => {
    const config = await twoChannels();
    for (const name of [
      "gpt-4",
      "Support-Bot",
      "workflow:",
      "workflow:abc",
      "workflow:123 ",
      "workflow:-1",
      "bot:1e5",
      "chatflow:١٢٣",
      `workflow:${"1".repeat(33)}`,
      "workflow-sync:123",
    ]) {
      expect(resolveModel(config, name), name).toBeUndefined();
    }
  });

  it("finds nothing dynamic when several channels have no default", async () => {
    const config = await twoChannels();
    for (const channel of config.channels) channel.isDefault = false;
    expect(defaultChannel(config)).toBeUndefined();
    expect(resolveModel(config, "workflow:123")).toBeUndefined();
    expect(resolveModel(config, "intl-bot")?.channel).toBe("com-intl");
  });
});
