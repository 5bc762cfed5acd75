import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parsePrivateKey } from "./private-key.js";

// Generated at test time, once per file; no key is ever committed.
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const pkcs8 = rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const pkcs1 = rsa.privateKey.export({ type: "pkcs1", format: "pem" }).toString();
const spki = rsa.publicKey.export({ type: "spki", format: "pem" }).toString();

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
