// Certificates for tests, built in process (no openssl CLI): a minimal DER writer, enough for a
// self-signed X.509 v3 certificate (RFC 5280 §4.1). Keys are generated at run time; nothing
// secret is committed.
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";

function der(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  let length: Buffer;
  if (body.length < 0x80) {
    length = Buffer.from([body.length]);
  } else {
    const hex = body.length.toString(16);
    const bytes = Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, "hex");
    length = Buffer.concat([Buffer.from([0x80 | bytes.length]), bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split(".").map(Number);
  const bytes = [40 * a + b];
  for (const arc of rest) {
    const groups = [arc & 0x7f];
    for (let v = arc >>> 7; v > 0; v >>>= 7) groups.unshift(0x80 | (v & 0x7f));
    bytes.push(...groups);
  }
  return der(0x06, Buffer.from(bytes));
}

function utcTime(date: Date): Buffer {
  const iso = date.toISOString(); // 2030-01-02T03:04:05.000Z → 300102030405Z
  const text = `${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return der(0x17, Buffer.from(text, "ascii"));
}

/** subjectAltName (RFC 5280 §4.2.1.6): DNS `localhost` and IP 127.0.0.1, what TLS clients check. */
function localhostNames(): Buffer {
  const names = der(
    0x30,
    der(0x82, Buffer.from("localhost")),
    der(0x87, Buffer.from([127, 0, 0, 1])),
  );
  return der(0x30, oid("2.5.29.17"), der(0x04, names));
}

/**
 * A self-signed certificate for `localhost` and 127.0.0.1 over `key`'s RSA pair, PEM, valid from
 * a day ago to a day ahead unless `validity` says otherwise.
 */
export function selfSignedCertificate(
  key: { privateKey: KeyObject; publicKey: KeyObject },
  validity = { from: new Date(Date.now() - 86_400_000), to: new Date(Date.now() + 86_400_000) },
): string {
  const algorithm = der(0x30, oid("1.2.840.113549.1.1.11"), Buffer.from([0x05, 0x00]));
  const name = der(0x30, der(0x31, der(0x30, oid("2.5.4.3"), der(0x0c, Buffer.from("localhost")))));
  const spki = key.publicKey.export({ type: "spki", format: "der" });
  const tbs = der(
    0x30,
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, Buffer.from([1])),
    algorithm,
    name,
    der(0x30, utcTime(validity.from), utcTime(validity.to)),
    name,
    spki,
    der(0xa3, der(0x30, localhostNames())),
  );
  const signature = sign("sha256", tbs, key.privateKey);
  const cert = der(0x30, tbs, algorithm, der(0x03, Buffer.from([0]), signature));
  const lines = cert.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`;
}

/**
 * A fresh 2048-bit RSA key and its {@link selfSignedCertificate}, both PEM: a server's `tls`
 * option, and the `cert` its clients trust as their CA.
 */
export function createTestCertificate(): { cert: string; key: string } {
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    cert: selfSignedCertificate(pair),
    key: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}
