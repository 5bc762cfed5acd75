import { describe, expect, it } from "vitest";
import { generateRsaKey, parseObject, validConfig } from "../../test/support/config-fixtures.js";

const key = generateRsaKey();

describe("audio model names in allow-lists", () => {
  it("count as models: an allow-list naming them, or a prefix of them, warns of nothing", async () => {
    const raw = validConfig(key);
    const alice = raw.api_keys[0];
    if (alice !== undefined) alice.models = ["tts-1", "whisper-1", "gpt-4o-*", "tts-2"];
    const config = await parseObject(raw, "/nonexistent");
    expect(config.warnings).toEqual([
      'gateway.yaml: api_keys[alice].models: "tts-2" matches no model of any channel',
    ]);
  });
});
