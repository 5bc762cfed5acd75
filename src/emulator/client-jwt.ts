import { randomBytes } from "node:crypto";
import { importPKCS8, SignJWT } from "jose";
import type { GeneratedApp } from "./types.js";

/** Claims of {@link signAppJwt}; each overrides what the Coze SDKs would send. */
export interface AppJwtClaims {
  /** JWT `aud`; the Go/Python SDKs send the API host with its port (§2.1). */
  aud: string | string[];
  /** Default: the app's client id. */
  iss?: string;
  /** Default: the app's public key id. */
  kid?: string;
  /** Unix seconds; default now. */
  iat?: number;
  /** Unix seconds; default `iat + 900`. */
  exp?: number;
  /** Default: 32 random bytes as hex. */
  jti?: string;
  /**
   * End-user id for conversation isolation (§2.1, §12.2); default: no claim. Any JSON value is
   * sent as given, to build invalid JWTs; the SDKs send a string.
   */
  session_name?: unknown;
}

/**
 * Signs the JWT a Coze service app sends to the token endpoint (§2.1): RS256 with header
 * `{alg, typ:"JWT", kid}` and claims `iss`, `aud`, `iat`, `exp`, `jti`, plus `session_name` when
 * given. For tests and demos: every claim can be overridden to build invalid tokens. `nowMs` defaults to `Date.now()`.
 */
export async function signAppJwt(
  app: Pick<GeneratedApp, "clientId" | "publicKeyId" | "privateKeyPem">,
  claims: AppJwtClaims,
  nowMs = Date.now(),
): Promise<string> {
  const key = await importPKCS8(app.privateKeyPem, "RS256");
  const iat = claims.iat ?? Math.floor(nowMs / 1000);
  const payload: Record<string, unknown> = { jti: claims.jti ?? randomBytes(32).toString("hex") };
  if (claims.session_name !== undefined) payload.session_name = claims.session_name;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: claims.kid ?? app.publicKeyId })
    .setIssuer(claims.iss ?? app.clientId)
    .setAudience(claims.aud)
    .setIssuedAt(iat)
    .setExpirationTime(claims.exp ?? iat + 900)
    .sign(key);
}
