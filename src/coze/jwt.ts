import { type KeyObject, randomBytes } from "node:crypto";
import { SignJWT } from "jose";
import type { Clock } from "./clock.js";

/** The claims of one Coze OAuth JWT (coze-api.md §2.1). */
export interface JwtClaimsOptions {
  /** The OAuth app id; becomes `iss`. */
  clientId: string;
  /** The public key fingerprint registered with the app; becomes the header's `kid`. */
  publicKeyId: string;
  /** The API host, such as `api.coze.cn` (a host, not a URL); becomes `aud`. */
  audience: string;
  /**
   * Seconds between `iat` and `exp`. Default 3600, what the js and py SDKs sign. This is the
   * JWT's own lifetime, not the access token's (that is `duration_seconds` in the request).
   */
  lifetimeSeconds?: number;
  /** End-user id for conversation isolation; becomes `session_name` when set. */
  sessionName?: string;
  /** Enterprise session context, e.g. `{device_info:{device_id}}`; `session_context` when set. */
  sessionContext?: Record<string, unknown>;
}

/**
 * Signs one Coze OAuth JWT with RS256 (coze-api.md §2.1): header `{alg:"RS256", typ:"JWT", kid}`,
 * claims `iss`, `aud`, `iat` (from `clock`, whole seconds), `exp = iat + lifetimeSeconds`, and a
 * fresh `jti` of 32 random bytes in hex (64 characters; the docs ask for more than 32 bytes of
 * randomness and a different value on every JWT, because Coze treats a JWT as single use), plus
 * `session_name` / `session_context` when given.
 *
 * @throws TypeError when a claim is empty or `lifetimeSeconds` is not a positive integer; jose's
 *   error when `key` cannot sign RS256.
 */
export async function signCozeJwt(
  key: KeyObject,
  claims: JwtClaimsOptions,
  clock: Clock,
): Promise<string> {
  for (const field of ["clientId", "publicKeyId", "audience"] as const) {
    if (typeof claims[field] !== "string" || claims[field] === "") {
      throw new TypeError(`JWT ${field} must be a non-empty string`);
    }
  }
  const lifetime = claims.lifetimeSeconds ?? 3600;
  if (!Number.isSafeInteger(lifetime) || lifetime <= 0) {
    throw new TypeError("JWT lifetimeSeconds must be a positive integer");
  }
  const iat = Math.floor(clock.now() / 1000);
  const payload: Record<string, unknown> = {};
  if (claims.sessionName !== undefined) payload.session_name = claims.sessionName;
  if (claims.sessionContext !== undefined) payload.session_context = claims.sessionContext;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: claims.publicKeyId })
    .setIssuer(claims.clientId)
    .setAudience(claims.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + lifetime)
    .setJti(randomBytes(32).toString("hex"))
    .sign(key);
}
