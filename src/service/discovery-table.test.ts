import { beforeAll, describe, expect, it } from "vitest";
import {
  generateRsaKey,
  parseObject,
  type RawConfig,
  validConfig,
} from "../../test/support/config-fixtures.js";
import type { GatewayConfig } from "../config/index.js";
import { displayText, nameOf } from "./discovery-names.js";
import { createModelTable, type DiscoveredItem } from "./discovery-table.js";

let config: GatewayConfig;
beforeAll(async () => {
  const key = generateRsaKey();
  const raw: RawConfig = validConfig(key);
  const main = raw.channels[0] as RawConfig["channels"][number];
  main.credentials = { ...(main.credentials as object), space_id: "7350000000000000001" };
  main.default = true;
  main.models = ["support-bot", { name: "report", workflow_id: "7391000000000000009" }];
  main.discovery = { naming: "name" };
  raw.channels.push({
    name: "backup",
    credentials: {
      client_id: "1127900106118",
      public_key_id: "kid-2",
      private_key: key.pkcs8,
      space_id: "7350000000000000002",
    },
    discovery: true,
  });
  config = await parseObject(raw, "/nonexistent");
});

const bot = (id: string, name: string, description = ""): DiscoveredItem => ({
  kind: "bot",
  id: `73900000000000000${id}`,
  name,
  description,
});

describe("nameOf (discovery naming: name)", () => {
  it("makes a Coze name a model name: spaces to -, any script kept", () => {
    expect(nameOf("Weather tool")).toBe("Weather-tool");
    expect(nameOf("  客服  助手 ")).toBe("客服-助手");
    expect(nameOf("a\tb\nc")).toBe("a-b-c");
  });

  it("drops hidden and control characters and *, and refuses what would mean something else", () => {
    expect(nameOf("sup\u200Bport\u202E*bot\u0007")).toBe("supportbot");
    expect(nameOf("workflow:7391000000000000001")).toBeUndefined();
    expect(nameOf("bot:1")).toBeUndefined();
    expect(nameOf("\u200B\u0000 ")).toBeUndefined();
    expect(nameOf("x".repeat(300))).toHaveLength(128);
    // Cut by characters, not UTF-16 units: no broken surrogate pair at the end.
    expect(nameOf("😀".repeat(200))).toBe("😀".repeat(128));
  });

  it("keeps display texts free of control characters and bounded", () => {
    expect(displayText("line one\nline\u0000two\u0007")).toBe("line one\nline two");
    expect(Array.from(displayText("é".repeat(2000)))).toHaveLength(1000);
  });
});

describe("the model table", () => {
  it("serves a name-mode channel's items under their names, an id-mode channel's under bot:{id}", () => {
    const table = createModelTable(config);
    const change = table.setDiscovered("cn-main", [bot("41", "Weather tool", "Says the weather.")]);
    table.setDiscovered("backup", [bot("42", "Other")]);
    expect(change).toEqual({ added: ["Weather-tool"], removed: [], renamed: [] });
    expect(table.resolveRoutes("Weather-tool")).toEqual([
      {
        name: "Weather-tool",
        channel: "cn-main",
        kind: "bot",
        targetId: "7390000000000000041",
        inputField: "input",
        weight: 1,
      },
    ]);
    expect(table.info("Weather-tool")).toEqual({
      kind: "bot",
      inputField: "input",
      displayName: "Weather tool",
      description: "Says the weather.",
      discovered: true,
    });
    // backup is not the default channel: the discovered name routes there, not to cn-main.
    expect(table.resolveRoutes("bot:7390000000000000042")[0]?.channel).toBe("backup");
    expect(table.served("cn-main")).toEqual({ bot: 1, workflow: 0, chatflow: 0 });
  });

  it("lets a configured name win: the item falls back to its id name, and says so", () => {
    const table = createModelTable(config);
    const change = table.setDiscovered("cn-main", [bot("43", "support bot"), bot("44", "report")]);
    expect(change.renamed).toEqual([
      "support-bot → bot:7390000000000000043",
      "report → bot:7390000000000000044",
    ]);
    expect(table.resolveRoutes("support-bot")[0]).toMatchObject({
      targetId: "7390000000000000001",
    });
    expect(table.resolveRoutes("report")[0]).toMatchObject({ kind: "workflow" });
    expect(table.resolveRoutes("bot:7390000000000000043")[0]?.channel).toBe("cn-main");
  });

  it("gives two different items that want one name their id names, never one of them the name", () => {
    const table = createModelTable(config);
    const change = table.setDiscovered("cn-main", [
      bot("45", "Helper"),
      { kind: "workflow", id: "7391000000000000046", name: "Helper", description: "" },
    ]);
    expect(change.renamed).toEqual([
      "Helper → bot:7390000000000000045",
      "Helper → workflow:7391000000000000046",
    ]);
    expect(table.resolveRoutes("Helper")).toEqual([]);
    expect(table.listed().map((m) => m.route.name)).toEqual([
      "support-bot",
      "report",
      "bot:7390000000000000045",
      "workflow:7391000000000000046",
    ]);
  });

  it("shares one item found on two channels as a failover name, in channel order", () => {
    const table = createModelTable(config);
    table.setDiscovered("backup", [bot("47", "Shared")]);
    table.setDiscovered("cn-main", [
      { kind: "bot", id: "7390000000000000047", name: "bot:oops", description: "" },
    ]);
    // cn-main's name is refused (it looks dynamic), so both channels name it bot:{id}.
    expect(table.resolveRoutes("bot:7390000000000000047").map((r) => r.channel)).toEqual([
      "cn-main",
      "backup",
    ]);
    expect(table.listed().filter((m) => m.info.discovered)).toHaveLength(1);
  });

  it("lends a configured route of the same target Coze's name and description, once", () => {
    const table = createModelTable(config);
    table.setDiscovered("cn-main", [
      bot("01", "Support", "Answers questions."),
      { kind: "workflow", id: "7391000000000000009", name: "weekly", description: "Reports." },
    ]);
    expect(
      table.listed().map((m) => [m.route.name, m.info.displayName, m.info.discovered]),
    ).toEqual([
      ["support-bot", "Support", false],
      ["report", "weekly", false],
    ]);
    expect(table.info("support-bot")?.description).toBe("Answers questions.");
  });

  it("replaces a channel's items as a whole: a name no longer published is gone", () => {
    const table = createModelTable(config);
    table.setDiscovered("cn-main", [bot("48", "Sales"), bot("49", "Ops")]);
    const change = table.setDiscovered("cn-main", [bot("49", "Ops")]);
    expect(change).toEqual({ added: [], removed: ["Sales"], renamed: [] });
    expect(table.resolveRoutes("Sales")).toEqual([]);
    expect(table.info("Sales")).toBeUndefined();
  });

  it("answers lookups of listed names with the same objects each time (nothing built per request)", () => {
    const table = createModelTable(config);
    table.setDiscovered("cn-main", [bot("50", "Ops")]);
    for (const name of ["support-bot", "Ops"]) {
      expect(table.resolveRoutes(name)).toBe(table.resolveRoutes(name));
      expect(table.info(name)).toBe(table.info(name));
    }
    // Dynamic names still resolve on the default channel, as before discovery.
    expect(table.resolveRoutes("workflow:7391000000000000077")[0]).toMatchObject({
      channel: "cn-main",
      kind: "workflow",
    });
    expect(table.resolveRoutes("no-such-model")).toEqual([]);
  });
});
