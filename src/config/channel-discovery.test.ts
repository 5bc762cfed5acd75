import { describe, expect, it } from "vitest";
import {
  configErrorHarness,
  creds,
  parseObject,
  type RawConfig,
  validConfig,
} from "../../test/support/config-fixtures.js";

const { key, expectError, rejects } = configErrorHarness();
const space = "7350000000000000001";

/** The parsed discovery settings of the first channel after `edit`. */
async function discoveryOf(edit: (c: RawConfig) => void) {
  const raw = validConfig(key);
  edit(raw);
  const config = await parseObject(raw, "/nonexistent");
  return config.channels[0]?.discovery;
}

const withDiscovery = (discovery: unknown, spaceId: string | null = space) =>
  rejects((c) => {
    if (spaceId !== null) creds(c).space_id = spaceId;
    (c.channels[0] as Record<string, unknown>).discovery = discovery;
  });

describe("channels[].discovery", () => {
  it("is off without the section, even with a space_id (the old settings often carry one)", async () => {
    expect(
      await discoveryOf((c) => {
        creds(c).space_id = space;
      }),
    ).toEqual({
      enabled: false,
      naming: "id",
      intervalMs: 300_000,
      startWaitMs: 5000,
      kinds: ["bot", "workflow", "chatflow"],
      maxModels: 500,
    });
  });

  it("is on with discovery: true, or a mapping unless it says enabled: false", async () => {
    const on = (discovery: unknown) =>
      discoveryOf((c) => {
        creds(c).space_id = space;
        (c.channels[0] as Record<string, unknown>).discovery = discovery;
      });
    expect(await on(true)).toMatchObject({ enabled: true, naming: "id" });
    expect(await on({ naming: "name" })).toMatchObject({ enabled: true, naming: "name" });
    expect(await on({})).toMatchObject({ enabled: true });
    expect(await on(false)).toMatchObject({ enabled: false });
    expect(await on({ enabled: false, kinds: ["bot"] })).toMatchObject({
      enabled: false,
      kinds: ["bot"],
    });
  });

  it("needs the channel's space_id when on, and names the field", async () => {
    await expectError(
      withDiscovery(true, null),
      "gateway.yaml: channels[cn-main].discovery: is on, but the channel's credentials have no space_id: set space_id to the Coze space to list, or remove discovery",
    );
    await expectError(
      withDiscovery({ naming: "name" }, ""),
      "gateway.yaml: channels[cn-main].discovery: is on, but the channel's credentials have no space_id: set space_id to the Coze space to list, or remove discovery",
    );
    // Off, it needs nothing.
    await expect(withDiscovery({ enabled: false }, null)).resolves.toBeDefined();
  });

  it("refuses a wrong type, an unknown key, naming or kind, and out-of-range integers", async () => {
    await expectError(
      withDiscovery("yes"),
      "gateway.yaml: channels[cn-main].discovery: must be true, false or a mapping (enabled, naming, interval_ms, start_wait_ms, kinds, max_models)",
    );
    await expectError(
      withDiscovery({ interval: 1000 }),
      "gateway.yaml: channels[cn-main].discovery.interval: is not a known field (did you mean interval_ms?); expected one of: enabled, naming, interval_ms, start_wait_ms, kinds, max_models",
    );
    await expectError(
      withDiscovery({ naming: "title" }),
      "gateway.yaml: channels[cn-main].discovery.naming: must be id or name",
    );
    await expectError(
      withDiscovery({ kinds: ["bot", "agent"] }),
      "gateway.yaml: channels[cn-main].discovery.kinds[1]: must be bot, workflow or chatflow",
    );
    await expectError(
      withDiscovery({ kinds: ["bot", "bot"] }),
      "gateway.yaml: channels[cn-main].discovery.kinds[1]: lists bot twice",
    );
    await expectError(
      withDiscovery({ kinds: [] }),
      "gateway.yaml: channels[cn-main].discovery.kinds: is empty; expected a list of bot, workflow, chatflow (or discovery: false)",
    );
    await expectError(
      withDiscovery({ interval_ms: 999 }),
      "gateway.yaml: channels[cn-main].discovery.interval_ms: must be an integer from 10000 to 86400000",
    );
    await expectError(
      withDiscovery({ max_models: 0 }),
      "gateway.yaml: channels[cn-main].discovery.max_models: must be an integer from 1 to 5000",
    );
  });

  it("does not warn of allow-list entries no route matches when names come from Coze", async () => {
    const warningsWith = async (naming: string) => {
      const raw = validConfig(key);
      creds(raw).space_id = space;
      (raw.channels[0] as Record<string, unknown>).discovery = { naming };
      (raw.api_keys[0] as Record<string, unknown>).models = ["Sales-bot", "Sales-*"];
      return (await parseObject(raw, "/nonexistent")).warnings;
    };
    expect(await warningsWith("name")).toEqual([]);
    expect(await warningsWith("id")).toEqual([
      'gateway.yaml: api_keys[alice].models: "Sales-bot" matches no model of any channel',
      'gateway.yaml: api_keys[alice].models: "Sales-*" matches no model of any channel',
    ]);
  });
});
