import { describe, expect, it } from "vitest";
import {
  aliceKey,
  configErrorHarness,
  type RawConfig,
} from "../../test/support/config-fixtures.js";
import { hashApiKey, modelAllowed } from "./api-keys.js";
import type { ApiKeyConfig } from "./gateway-config.js";

// Keys generated at test time; no key is committed.
const { expectError, rejects } = configErrorHarness();

describe("api_keys", () => {
  const firstKey = (edit: (k: Record<string, unknown>) => void) =>
    rejects((c) => {
      const entry = c.api_keys[0];
      if (entry !== undefined) edit(entry);
    });

  it("requires api_keys", async () => {
    await expectError(
      rejects((c) => {
        delete (c as Partial<RawConfig>).api_keys;
      }),
      "gateway.yaml: api_keys: is missing; expected a list of caller keys, at least one",
    );
  });

  it("requires at least one key", async () => {
    await expectError(
      rejects((c) => {
        c.api_keys = [];
      }),
      "gateway.yaml: api_keys: is empty; expected at least one caller key",
    );
  });

  it("refuses a key shorter than 16 characters without quoting it", async () => {
    await expectError(
      firstKey((k) => {
        k.key = "sk-short-secret";
      }),
      "gateway.yaml: api_keys[alice].key: is too short: use at least 16 characters",
    );
  });

  it("refuses a key with spaces inside", async () => {
    await expectError(
      firstKey((k) => {
        k.key = "sk alice 0123456789 abcdef";
      }),
      "gateway.yaml: api_keys[alice].key: must be printable ASCII without spaces",
    );
  });

  it("refuses a key that YAML read as a number, asking for quotes", async () => {
    await expectError(
      firstKey((k) => {
        k.key = 1234567890123456;
      }),
      "gateway.yaml: api_keys[alice].key: must be an API key, env:NAME or file:PATH, not a number (write it in quotes)",
    );
  });

  it("refuses both key and sha256", async () => {
    await expectError(
      firstKey((k) => {
        k.sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
      }),
      "gateway.yaml: api_keys[alice]: has both key and sha256; give one",
    );
  });

  it("refuses an entry with neither key nor sha256", async () => {
    await expectError(
      firstKey((k) => {
        delete k.key;
      }),
      "gateway.yaml: api_keys[alice]: needs key (the key, env:NAME or file:PATH) or sha256 (its SHA-256 in hex)",
    );
  });

  it("refuses a sha256 that is not 64 hex characters", async () => {
    await expectError(
      firstKey((k) => {
        delete k.key;
        k.sha256 = "9f86d081884c7d659a2feaa0c55ad015";
      }),
      "gateway.yaml: api_keys[alice].sha256: must be the SHA-256 of the key as 64 hexadecimal characters",
    );
  });

  it("refuses two keys with one name", async () => {
    await expectError(
      rejects((c) => {
        c.api_keys.push({ name: "alice", key: `${aliceKey}-2` });
      }),
      "gateway.yaml: api_keys[1].name: alice is already the name of api_keys[0]",
    );
  });

  it("refuses one key under two names", async () => {
    await expectError(
      rejects((c) => {
        c.api_keys.push({ name: "bob", key: aliceKey });
      }),
      "gateway.yaml: api_keys[bob]: has the same key as api_keys[alice]; give each caller its own",
    );
  });

  it("refuses an empty allow-list", async () => {
    await expectError(
      firstKey((k) => {
        k.models = [];
      }),
      "gateway.yaml: api_keys[alice].models: is empty, which allows no model; list models, or remove it to allow all",
    );
  });

  it("refuses an empty allow-list entry", async () => {
    await expectError(
      firstKey((k) => {
        k.models = ["support-bot", ""];
      }),
      "gateway.yaml: api_keys[alice].models[1]: is empty; expected a model name or a prefix ending in *",
    );
  });

  it("refuses an allow-list entry that is not a string", async () => {
    await expectError(
      firstKey((k) => {
        k.models = [42];
      }),
      "gateway.yaml: api_keys[alice].models[0]: must be a model name or a prefix ending in *, not a number",
    );
  });

  it("refuses a * inside an allow-list entry", async () => {
    await expectError(
      firstKey((k) => {
        k.models = ["work*flow:*"];
      }),
      "gateway.yaml: api_keys[alice].models[0]: may hold * only at its end, as a prefix wildcard",
    );
  });

  it("refuses a typo in an api key field", async () => {
    await expectError(
      firstKey((k) => {
        k.modles = ["support-bot"];
      }),
      "gateway.yaml: api_keys[alice].modles: is not a known field (did you mean models?); expected one of: name, key, sha256, models, raw_coze_ids, limits",
    );
  });
});

describe("modelAllowed", () => {
  const keyWith = (models: string[] | undefined): ApiKeyConfig => ({
    name: "k",
    sha256: hashApiKey("k".repeat(16)),
    models,
    rawCozeIds: false,
  });

  it("allows everything without an allow-list", () => {
    expect(modelAllowed(keyWith(undefined), "anything")).toBe(true);
  });

  it("allows exact names only when the entry has no *", () => {
    const key = keyWith(["support-bot"]);
    expect(modelAllowed(key, "support-bot")).toBe(true);
    expect(modelAllowed(key, "support-bot-2")).toBe(false);
    expect(modelAllowed(key, "support")).toBe(false);
  });

  it("allows every name under a prefix ending in *", () => {
    const key = keyWith(["workflow:*", "sales-*"]);
    expect(modelAllowed(key, "workflow:7391000000000000001")).toBe(true);
    expect(modelAllowed(key, "sales-bot")).toBe(true);
    expect(modelAllowed(key, "workflow-async:7391000000000000001")).toBe(false);
    expect(modelAllowed(key, "support-bot")).toBe(false);
  });

  it("allows everything with a lone *", () => {
    expect(modelAllowed(keyWith(["*"]), "bot:1")).toBe(true);
  });
});

describe("hashApiKey", () => {
  it("is the SHA-256 of the key's UTF-8 bytes", () => {
    expect(hashApiKey("test").toString("hex")).toBe(
      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    );
    expect(hashApiKey("é")).toHaveLength(32);
    expect(hashApiKey("é").equals(hashApiKey("e\u0301"))).toBe(false);
  });
});
