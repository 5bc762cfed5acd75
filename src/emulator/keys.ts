import {
  createHash,
  createPublicKey,
  generateKeyPair,
  type KeyObject,
  randomInt,
} from "node:crypto";
import { promisify } from "node:util";
import type { GeneratedApp } from "./types.js";

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * Generates an RSA 2048 key pair and the ids of a Coze service app around it. The private key is
 * PKCS#8 PEM (`BEGIN PRIVATE KEY`), the form every SDK accepts (§2.1); the public key is SPKI PEM.
 * `clientId` defaults to a random 13-digit id, `publicKeyId` to a fingerprint of the public key.
 * `accountIds` and `enterpriseIds` (the app's authorisations, §12.1) are passed through.
 */
export async function generateApp(
  options: Partial<
    Pick<GeneratedApp, "clientId" | "publicKeyId" | "accountIds" | "enterpriseIds">
  > = {},
): Promise<GeneratedApp> {
  const { publicKey, privateKey } = await generateKeyPairAsync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return {
    clientId: options.clientId ?? String(randomInt(1_000_000_000_000, 9_999_999_999_999)),
    publicKeyId: options.publicKeyId ?? fingerprint(createPublicKey(publicKey)),
    publicKeyPem: publicKey,
    privateKeyPem: privateKey,
    ...(options.accountIds === undefined ? {} : { accountIds: [...options.accountIds] }),
    ...(options.enterpriseIds === undefined ? {} : { enterpriseIds: [...options.enterpriseIds] }),
  };
}

/**
 * Parses an RSA public key PEM. Throws `TypeError` when it is not one (a private key PEM is
 * refused too, so a misconfigured app never turns the emulator into a key holder).
 */
export function parseRsaPublicKey(pem: string): KeyObject {
  if (typeof pem !== "string" || !pem.includes("PUBLIC KEY")) {
    throw new TypeError("public key must be a PEM public key");
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (cause) {
    throw new TypeError("public key PEM does not parse", { cause });
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw new TypeError("public key must be an RSA key (the JWT is RS256)");
  }
  return key;
}

function fingerprint(key: KeyObject): string {
  const der = key.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("base64url").slice(0, 40);
}
