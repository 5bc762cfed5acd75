import { generateKeyPairSync } from "node:crypto";
import { decodeProtectedHeader, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import type { Clock } from "./clock.js";
import { signCozeJwt } from "./jwt.js";

// Generated at test time, once per file; no key is ever committed.
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });

// 2021-02-03T04:05:06.789Z: a fixed instant with a fractional second.
const fixedNow = 1_612_325_106_789;
const clock: Clock = { now: () => fixedNow, sleep: () => Promise.resolve() };

const claims = { clientId: "1127900106117", publicKeyId: "kid-abc", audience: "api.coze.cn" };

describe("signCozeJwt", () => {
  const key = rsa.privateKey;

  it("signs an RS256 JWT with typ and kid that verifies with the public key", async () => {
    const jwt = await signCozeJwt(key, claims, clock);
    expect(decodeProtectedHeader(jwt)).toEqual({ alg: "RS256", typ: "JWT", kid: "kid-abc" });
    const { payload } = await jwtVerify(jwt, rsa.publicKey, {
      algorithms: ["RS256"],
      issuer: "1127900106117",
      audience: "api.coze.cn",
      currentDate: new Date(fixedNow),
    });
    const iat = Math.floor(fixedNow / 1000);
    expect(payload.iat).toBe(iat);
    expect(payload.exp).toBe(iat + 3600);
    expect(Object.keys(payload).sort()).toEqual(["aud", "exp", "iat", "iss", "jti"]);
  });

  it("uses a fresh 64-hex-character jti on every call", async () => {
    const jtis = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const { payload } = await jwtVerify(await signCozeJwt(key, claims, clock), rsa.publicKey, {
        currentDate: new Date(fixedNow),
      });
      expect(payload.jti).toMatch(/^[0-9a-f]{64}$/);
      jtis.add(String(payload.jti));
    }
    expect(jtis.size).toBe(50);
  });

  it("takes iat from the injected clock and honours lifetimeSeconds", async () => {
    const later: Clock = { now: () => 2_000_000_000_500, sleep: () => Promise.resolve() };
    const jwt = await signCozeJwt(key, { ...claims, lifetimeSeconds: 600 }, later);
    const { payload } = await jwtVerify(jwt, rsa.publicKey, {
      currentDate: new Date(2_000_000_000_500),
    });
    expect(payload.iat).toBe(2_000_000_000);
    expect(payload.exp).toBe(2_000_000_600);
  });

  it("adds session_name and session_context only when given", async () => {
    const sessionContext = { device_info: { device_id: "1234567890" } };
    const jwt = await signCozeJwt(
      key,
      { ...claims, sessionName: "user_2222", sessionContext },
      clock,
    );
    const { payload } = await jwtVerify(jwt, rsa.publicKey, { currentDate: new Date(fixedNow) });
    expect(payload.session_name).toBe("user_2222");
    expect(payload.session_context).toEqual(sessionContext);
  });

  it("refuses empty claims and a lifetime that is not a positive integer", async () => {
    await expect(signCozeJwt(key, { ...claims, clientId: "" }, clock)).rejects.toThrow(
      "JWT clientId must be a non-empty string",
    );
    await expect(signCozeJwt(key, { ...claims, publicKeyId: "" }, clock)).rejects.toThrow(
      TypeError,
    );
    await expect(signCozeJwt(key, { ...claims, audience: "" }, clock)).rejects.toThrow(TypeError);
    for (const lifetimeSeconds of [0, -1, 1.5, Number.NaN]) {
      await expect(signCozeJwt(key, { ...claims, lifetimeSeconds }, clock)).rejects.toThrow(
        "JWT lifetimeSeconds must be a positive integer",
      );
    }
  });
});
