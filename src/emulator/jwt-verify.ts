import type { KeyObject } from "node:crypto";
import { compactVerify, decodeProtectedHeader } from "jose";

/** An app as the token endpoint needs it: ids, the parsed public key and its authorisations. */
export interface RegisteredApp {
  clientId: string;
  publicKeyId: string;
  key: KeyObject;
  /** Accounts that authorised the app: it may buy cross-account tokens for them (§12.1). */
  accountIds?: ReadonlySet<string>;
  /** Enterprises in which it is a privileged app: it may buy enterprise tokens there (§12.1). */
  enterpriseIds?: ReadonlySet<string>;
}

/** An OAuth error: answered flat as `{error_code, error_message, error}` with `status` (§2.4). */
export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "OAuthError";
  }
}

/** Clock skew tolerated on `iat` and `exp`, in seconds ("a few seconds", §7.1). */
export const JWT_SKEW_SECONDS = 5;

/** What {@link verifyClientJwt} needs besides the JWT. */
export interface JwtCheck {
  apps: ReadonlyMap<string, RegisteredApp>;
  nowMs: number;
  /** Accepted `aud` values. */
  audiences: ReadonlySet<string>;
  /** `jti` → expiry (ms) of every JWT already exchanged; updated on success. */
  usedJti: Map<string, number>;
}

/** A verified token request JWT: the app that signed it and the end user it names, if any. */
export interface VerifiedJwt {
  app: RegisteredApp;
  /** The `session_name` claim (§2.1, §12.2); absent when the claim is absent or `""`. */
  sessionName?: string;
}

const invalid = (message: string) => new OAuthError(401, "invalid_client", message);

/**
 * Verifies the JWT of a token request as §7.1 lists: RS256 signature with the key chosen by
 * `kid`, `iss` = that app's client id, `aud` accepted, `iat <= now < exp` within
 * {@link JWT_SKEW_SECONDS}, and a `jti` never seen before (the JWT is single use,
 * docs:oauth_jwt.md:193). Throws {@link OAuthError} `invalid_client` (HTTP 401) otherwise, and
 * `invalid_request` (HTTP 400, §2.4) when the optional `session_name` claim is not a string;
 * neither burns the `jti`.
 */
export async function verifyClientJwt(jwt: string, check: JwtCheck): Promise<VerifiedJwt> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(jwt);
  } catch {
    throw invalid("the bearer value is not a JWT");
  }
  if (header.alg !== "RS256") throw invalid("JWT alg must be RS256");
  const app = typeof header.kid === "string" ? check.apps.get(header.kid) : undefined;
  if (!app) throw invalid("JWT kid is not the public key id of a registered app");
  let payloadBytes: Uint8Array;
  try {
    ({ payload: payloadBytes } = await compactVerify(jwt, app.key, { algorithms: ["RS256"] }));
  } catch {
    throw invalid("JWT signature verification failed");
  }
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(new TextDecoder().decode(payloadBytes)) as Record<string, unknown>;
  } catch {
    throw invalid("JWT payload is not JSON");
  }
  if (typeof claims !== "object" || claims === null) throw invalid("JWT payload is not an object");
  if (claims.iss !== app.clientId) throw invalid("JWT iss is not the client id of the app of kid");
  const auds = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!auds.some((a) => typeof a === "string" && check.audiences.has(a))) {
    throw invalid(`JWT aud ${JSON.stringify(claims.aud ?? null)} is not this host`);
  }
  const { iat, exp, jti } = claims;
  const now = check.nowMs / 1000;
  if (typeof iat !== "number" || typeof exp !== "number")
    throw invalid("JWT iat and exp are required");
  if (iat > now + JWT_SKEW_SECONDS) throw invalid("JWT iat is in the future");
  if (exp <= iat) throw invalid("JWT exp must be after iat");
  if (now >= exp + JWT_SKEW_SECONDS) throw invalid("JWT has expired");
  if (typeof jti !== "string" || jti === "") throw invalid("JWT jti is required");
  for (const [used, until] of check.usedJti) if (until < check.nowMs) check.usedJti.delete(used);
  if (check.usedJti.has(jti)) throw invalid("JWT jti has already been used");
  // §2.1: `session_name` is an optional string; the docs' error table has no better code than
  // invalid_request for a claim of the wrong type (§2.4).
  const session = claims.session_name;
  if (session !== undefined && typeof session !== "string") {
    throw new OAuthError(400, "invalid_request", "invalid request: session_name");
  }
  check.usedJti.set(jti, (exp + JWT_SKEW_SECONDS) * 1000);
  return session ? { app, sessionName: session } : { app };
}
