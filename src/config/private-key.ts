import { createPrivateKey, type KeyObject } from "node:crypto";

// The smallest RSA modulus we sign with. RS256 with less is weak, and jose refuses it anyway.
const minModulusBits = 2048;

// PEM labels of the two RSA private key encodings Coze's SDKs accept (coze-api.md §2.1: go and
// java parse PKCS#8 only, js also takes PKCS#1 "RSA PRIVATE KEY").
const derTypes: Readonly<Record<string, "pkcs8" | "pkcs1">> = {
  "PRIVATE KEY": "pkcs8",
  "RSA PRIVATE KEY": "pkcs1",
};

/**
 * Parses the RSA private key of a Coze OAuth service app.
 *
 * Accepts a PEM block labelled `PRIVATE KEY` (PKCS#8, what the Coze console hands out) or
 * `RSA PRIVATE KEY` (PKCS#1). It tolerates what settings files do to PEM: `\r\n` line ends,
 * literal `\n` escapes (a PEM pasted into JSON or an env file), surrounding whitespace and
 * missing or extra line breaks inside the base64 body.
 *
 * @throws TypeError when `pem` is not a string, holds no PEM block, holds a public key, a
 *   certificate or an encrypted key, does not decode, is not an RSA key, or has a modulus under
 *   2048 bits. The message says which; it never contains any part of the key.
 */
export function parsePrivateKey(pem: string): KeyObject {
  if (typeof pem !== "string") throw new TypeError("private key must be a PEM string");
  const text = pem.replace(/\\r\\n|\\n/g, "\n").replace(/\r\n?/g, "\n");
  const block = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(text);
  if (block === null) {
    throw new TypeError("private key is not PEM: expected a -----BEGIN PRIVATE KEY----- block");
  }
  const label = block[1] ?? "";
  const body = block[2] ?? "";
  if (label === "ENCRYPTED PRIVATE KEY" || /Proc-Type:\s*4,ENCRYPTED/.test(body)) {
    throw new TypeError("private key is encrypted; provide it without a passphrase");
  }
  if (label.endsWith("PUBLIC KEY") || label === "CERTIFICATE") {
    throw new TypeError(`private key PEM holds a ${label.toLowerCase()}, not a private key`);
  }
  const type = derTypes[label];
  if (type === undefined) {
    throw new TypeError("private key is not an RSA private key (PEM label is not PRIVATE KEY)");
  }
  const base64 = body.replace(/\s+/g, "");
  if (base64 === "" || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) {
    throw new TypeError("private key PEM body is not valid base64");
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(base64, "base64"), format: "der", type });
  } catch (err) {
    // OpenSSL's reason (e.g. "DECODER routines::unsupported") names no key bytes; keep it as
    // the cause for debugging, but the message is ours.
    throw new TypeError("private key PEM does not decode as a private key", { cause: err });
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw new TypeError(
      `private key is not an RSA key (it is ${key.asymmetricKeyType ?? "unknown"})`,
    );
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < minModulusBits) {
    throw new TypeError(
      `private key is too short: ${bits} bits, at least ${minModulusBits} needed`,
    );
  }
  return key;
}
