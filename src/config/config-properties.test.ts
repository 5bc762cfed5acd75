import { generateKeyPairSync } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ConfigError, parseConfig } from "./index.js";

// Property-based tests (issue #5 "Bad input"): whatever the file holds, loading it either gives
// a config or a ConfigError naming the file; it never throws anything else and never echoes a
// secret.

const pem = generateKeyPairSync("rsa", { modulusLength: 2048 })
  .privateKey.export({ type: "pkcs8", format: "pem" })
  .toString();
const apiKey = "prop-test-key-0123456789abcdef";

const valid = {
  server: { port: 8080 },
  server_secret: "prop-test-server-secret-0123456789abcdef",
  api_keys: [{ name: "ops", key: apiKey }],
  channels: [
    {
      name: "cn-main",
      credentials: {
        client_id: "1127900106117",
        public_key_id: "kid",
        private_key: pem,
        default_bot_id: "7390000000000000001",
      },
      models: ["support-bot"],
    },
  ],
};

async function load(text: string) {
  try {
    return {
      config: await parseConfig(text, { file: "gateway.yaml", baseDir: "/nonexistent", env: {} }),
    };
  } catch (err) {
    return { err };
  }
}

function expectCleanOutcome(outcome: { config?: unknown; err?: unknown }) {
  if (outcome.err === undefined) return;
  expect(outcome.err).toBeInstanceOf(ConfigError);
  // Every problem the loader found, not only the first, is as clean.
  const all = (outcome.err as ConfigError).all;
  expect(all[0]).toBe(outcome.err);
  for (const { message } of all) {
    expect(message.startsWith("gateway.yaml")).toBe(true);
    expect(message).not.toContain(apiKey);
    for (const line of pem.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"))) {
      expect(message).not.toContain(line);
    }
  }
}

/** A JSON value of any shape, for replacing parts of a valid config. */
const anyJson = fc.jsonValue({ maxDepth: 3 });

/** Every path into the valid config, so a mutation can replace any field with anything. */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== "object") return [prefix];
  const entries = Array.isArray(value)
    ? value.map((v, i) => [i, v] as const)
    : Object.entries(value);
  return [prefix, ...entries.flatMap(([k, v]) => paths(v, [...prefix, k]))];
}
const allPaths = paths(valid).filter((p) => p.length > 0);

function withReplaced(path: (string | number)[], replacement: unknown): unknown {
  const copy = structuredClone(valid) as Record<string | number, unknown>;
  let node: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path.at(-1) as string | number] = replacement;
  return copy;
}

describe("config loader under arbitrary input", () => {
  it("accepts the valid base config", async () => {
    expect((await load(stringify(valid))).err).toBeUndefined();
  });

  it("never throws anything but a ConfigError for arbitrary text", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 400 }), async (text) => {
        expectCleanOutcome(await load(text));
      }),
      { numRuns: 300 },
    );
  });

  it("never throws anything but a ConfigError for arbitrary YAML documents", async () => {
    await fc.assert(
      fc.asyncProperty(anyJson, async (doc) => {
        expectCleanOutcome(await load(stringify(doc)));
      }),
      { numRuns: 300 },
    );
  });

  it("gives a config or a clean ConfigError when any field of a valid config is replaced by anything", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...allPaths), anyJson, async (path, replacement) => {
        const outcome = await load(stringify(withReplaced(path, replacement)));
        expectCleanOutcome(outcome);
      }),
      { numRuns: 400 },
    );
  });
});
