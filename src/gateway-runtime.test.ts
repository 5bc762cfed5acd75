import { describe, expect, it } from "vitest";
import { hashApiKey } from "./config/index.js";
import { createAuthenticator } from "./gateway-runtime.js";

// The caller check by the presented key's SHA-256: every configured key finds its own caller,
// however many there are, and nothing else finds one.
describe("createAuthenticator", () => {
  const keyOf = (i: number) => `caller-key-${String(i).padStart(5, "0")}-0123456789`;
  const config = (n: number) =>
    ({
      serverSecret: new Uint8Array(32).fill(7),
      apiKeys: Array.from({ length: n }, (_, i) => ({
        name: `key-${i}`,
        sha256: hashApiKey(keyOf(i)),
        models: undefined,
        rawCozeIds: false,
      })),
    }) as unknown as Parameters<typeof createAuthenticator>[0];

  it("finds each of 5,000 keys' own caller", () => {
    const { callers, authenticate } = createAuthenticator(config(5000));
    expect(callers).toHaveLength(5000);
    for (const i of [0, 1, 2499, 4998, 4999]) {
      const caller = authenticate(keyOf(i));
      expect(caller?.name).toBe(`key-${i}`);
      expect(caller).toBe(callers[i]);
    }
  });

  it("finds nothing for a key that is not configured, nearly or at all", () => {
    const { authenticate } = createAuthenticator(config(3));
    const known = keyOf(1);
    for (const given of [
      keyOf(3),
      `${known}x`,
      known.slice(0, -1),
      known.toUpperCase(),
      ` ${known}`,
      "",
      hashApiKey(known).toString("base64"),
      hashApiKey(known).toString("hex"),
    ]) {
      expect(authenticate(given)).toBeUndefined();
    }
    expect(authenticate(known)?.name).toBe("key-1");
  });

  it("gives each key a tenant of its own", () => {
    const { callers } = createAuthenticator(config(2));
    const [a, b] = callers;
    expect(a?.tenant.sessionName).not.toBe(b?.tenant.sessionName);
    expect(a?.tenant.sessionName).toMatch(/^gw_[\w-]{22}$/);
    expect(b?.tenant.open("chat", a?.tenant.seal("chat", "7001") ?? "")).toBeUndefined();
  });
});
