import { generateKeyPairSync } from "node:crypto";
import { decodeProtectedHeader, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import type { Clock } from "./clock.js";
import { parsePrivateKey, signCozeJwt } from "./jwt.js";

// Generated at test time, once per file; no key is ever committed.
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const pkcs8 = rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const pkcs1 = rsa.privateKey.export({ type: "pkcs1", format: "pem" }).toString();
const spki = rsa.publicKey.export({ type: "spki", format: "pem" }).toString();

// 2021-02-03T04:05:06.789Z: a fixed instant with a fractional second.
const fixedNow = 1_612_325_106_789;
const clock: Clock = { now: () => fixedNow, sleep: () => Promise.resolve() };

const claims = { clientId: "1127900106117", publicKeyId: "kid-abc", audience: "api.coze.cn" };

// No 12-character window of the key's base64 body may appear in `message`.
function expectNoKeyMaterial(message: string, pem: string): void {
  const body = pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  for (let i = 0; i + 12 <= body.length; i++) {
    expect(message.includes(body.slice(i, i + 12))).toBe(false);
  }
}

function parseError(pem: string): TypeError {
  try {
    parsePrivateKey(pem);
  } catch (err) {
    expect(err).toBeInstanceOf(TypeError);
    expectNoKeyMaterial((err as TypeError).message, pem);
    return err as TypeError;
  }
  throw new Error("parsePrivateKey accepted the input");
}

describe("parsePrivateKey", () => {
  it("parses a PKCS#8 PEM into the same RSA private key", () => {
    const key = parsePrivateKey(pkcs8);
    expect(key.type).toBe("private");
    expect(key.asymmetricKeyType).toBe("rsa");
    expect(key.equals(rsa.privateKey)).toBe(true);
  });

  it("parses a PKCS#1 'RSA PRIVATE KEY' PEM", () => {
    expect(parsePrivateKey(pkcs1).equals(rsa.privateKey)).toBe(true);
  });

  it("tolerates CRLF line ends, literal \\n escapes from JSON and surrounding whitespace", () => {
    const crlf = pkcs8.replace(/\n/g, "\r\n");
    const escaped = JSON.stringify(pkcs8).slice(1, -1);
    const escapedCrlf = JSON.stringify(crlf).slice(1, -1);
    expect(escaped).toContain("\\n");
    for (const pem of [crlf, escaped, escapedCrlf, `\n  ${pkcs8}  \n`]) {
      expect(parsePrivateKey(pem).equals(rsa.privateKey)).toBe(true);
    }
  });

  it("tolerates a PEM whose line breaks became spaces or vanished", () => {
    const lines = pkcs1.trim().split("\n");
    const spaced = lines.join(" ");
    const header = lines[0] ?? "";
    const footer = lines.at(-1) ?? "";
    const oneLine = `${header}${lines.slice(1, -1).join("")}${footer}`;
    expect(parsePrivateKey(spaced).equals(rsa.privateKey)).toBe(true);
    expect(parsePrivateKey(oneLine).equals(rsa.privateKey)).toBe(true);
  });

  it("rejects a public key, saying so", () => {
    expect(parseError(spki).message).toMatch(/public key/);
    const pkcs1Public = rsa.publicKey.export({ type: "pkcs1", format: "pem" }).toString();
    expect(parseError(pkcs1Public).message).toMatch(/public key/);
  });

  it("rejects a certificate", () => {
    const cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";
    expect(parseError(cert).message).toMatch(/certificate/);
  });

  it("rejects encrypted keys in both encodings", () => {
    const options = { cipher: "aes-256-cbc", passphrase: "not-a-real-secret" } as const;
    const encrypted8 = rsa.privateKey
      .export({ type: "pkcs8", format: "pem", ...options })
      .toString();
    const encrypted1 = rsa.privateKey
      .export({ type: "pkcs1", format: "pem", ...options })
      .toString();
    expect(encrypted8).toContain("ENCRYPTED PRIVATE KEY");
    expect(encrypted1).toContain("Proc-Type: 4,ENCRYPTED");
    expect(parseError(encrypted8).message).toMatch(/encrypted/);
    expect(parseError(encrypted1).message).toMatch(/encrypted/);
  });

  it("rejects an EC key, in its own label or in PKCS#8", () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const sec1 = ec.privateKey.export({ type: "sec1", format: "pem" }).toString();
    const ec8 = ec.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expect(parseError(sec1).message).toMatch(/not an RSA private key/);
    expect(parseError(ec8).message).toBe("private key is not an RSA key (it is ec)");
  });

  it("rejects an RSA key under 2048 bits", () => {
    const weak = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const pem = weak.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expect(parseError(pem).message).toBe(
      "private key is too short: 1024 bits, at least 2048 needed",
    );
  });

  it("rejects text that is no PEM, a damaged body and a body that is not a key", () => {
    expect(parseError("").message).toMatch(/not PEM/);
    expect(parseError("czs_this-is-a-token-not-a-key").message).toMatch(/not PEM/);
    const truncated = pkcs8.replace(/\n-----END/, "%%\n-----END");
    expect(parseError(truncated).message).toMatch(/not valid base64/);
    const cut = pkcs8.split("\n");
    const shortened = [...cut.slice(0, 5), ...cut.slice(-2)].join("\n");
    expect(parseError(shortened).message).toBe("private key PEM does not decode as a private key");
  });

  it("rejects a value that is not a string", () => {
    expect(() => parsePrivateKey(undefined as unknown as string)).toThrow(TypeError);
  });
});

describe("signCozeJwt", () => {
  const key = parsePrivateKey(pkcs8);

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
