import { randomBytes, randomInt } from "node:crypto";

let sequence = randomInt(1_000_000_000, 9_000_000_000);

/**
 * A fresh 19-digit id such as `7392518841230958104`, unique within the process (a random base
 * plus a counter, so two ids never collide).
 */
export function newId(): string {
  sequence += 1;
  return `74${String(randomInt(0, 1_000_000)).padStart(6, "0")}${String(sequence).padStart(11, "0")}`;
}

/**
 * A log id in the format seen on the wire: `yyyyMMddHHmmss` (UTC) plus 20 upper-case hex digits
 * (§1.3).
 */
export function newLogId(nowMs: number): string {
  const stamp = new Date(nowMs).toISOString().replace(/[-:T]/g, "").slice(0, 14);
  return `${stamp}${randomBytes(10).toString("hex").toUpperCase()}`;
}

/** An opaque access token with the JWT-grant prefix `czs_` (§2.3). */
export function newAccessToken(): string {
  return `czs_${randomBytes(48).toString("base64url")}`;
}

/** An opaque tool call id, base64 like the docs' example (§4.5). */
export function newToolCallId(): string {
  return randomBytes(30).toString("base64");
}
