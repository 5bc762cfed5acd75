import { type Ctx, readJson, sendJson } from "./http-io.js";
import { OAuthError, verifyClientJwt } from "./jwt-verify.js";
import type { EmulatorState } from "./state.js";
import { bearer, type TokenOwner } from "./tokens.js";

const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/** Default token lifetime, docs:oauth_jwt.md:214 (§2.2). */
const DEFAULT_DURATION = 900;
/** Documented maximum; larger requests are clamped (§10.10 leaves reject-or-clamp open). */
const MAX_DURATION = 86_399;

const ACCOUNT_PATH = /^\/api\/permission\/oauth2\/account\/([^/]+)\/token$/;
const ENTERPRISE_PATH = /^\/api\/permission\/oauth2\/enterprise_id\/([^/]+)\/token$/;

/**
 * `POST /api/permission/oauth2/token` and its account/enterprise variants (§2.2, §12.1):
 * exchanges a signed JWT for an access token that carries the JWT's `session_name`, if any
 * (§12.2), and acts for the app, or for the account or enterprise the path names. The body and
 * the path are checked first so that a bad request does not burn the JWT's single-use `jti`.
 * Answers flat `{access_token, expires_in}` (absolute Unix seconds, §2.3) or a flat OAuth error
 * `{error_code, error_message, error}` with 400/401, or 503 while a `token_down` fault is armed
 * (§2.4, §7.1). Token bodies have no `detail`: the docs show only these fields (§10.3); the log
 * id is in the `X-Tt-Logid` header.
 *
 * The variants (§12.1): `account_id` is any digit string (else `invalid_request`); an account
 * that has not authorised the app, or an enterprise where it is not a privileged app, is HTTP 400
 * `access_deny`. go also copies the id into the body (as a number for the account): it must then
 * name the path's id, or the request is `invalid_request` (sources silent; our choice). `scope`
 * and `session_context` are accepted and ignored (§12.3).
 */
export async function handleToken(state: EmulatorState, ctx: Ctx): Promise<void> {
  try {
    if (ctx.plan.tokenDown) throw new OAuthError(503, "internal_error", "Service internal error.");
    let body: Record<string, unknown>;
    try {
      body = await readJson(ctx);
    } catch {
      throw new OAuthError(400, "invalid_request", "invalid request: body must be a JSON object");
    }
    const grant = body.grant_type;
    if (typeof grant !== "string" || grant === "") {
      throw new OAuthError(400, "invalid_request", "invalid request: grant_type");
    }
    if (grant !== JWT_BEARER) {
      throw new OAuthError(400, "unsupported_grant_type", `not supported grant type: ${grant}`);
    }
    const duration = durationOf(body.duration_seconds);
    const variant = variantOf(ctx.url.pathname, body);
    const jwt = bearer(ctx.req.headers.authorization);
    if (!jwt)
      throw new OAuthError(401, "invalid_client", "missing JWT: Authorization: Bearer <JWT>");
    const now = state.now();
    const { app, sessionName } = await verifyClientJwt(jwt, {
      apps: state.apps,
      nowMs: now,
      audiences: state.audiencesFor(ctx.req.headers.host),
      usedJti: state.usedJti,
    });
    // go always sends client_id (possibly ""), py/js never do (§2.2): check it only when set.
    const clientId = body.client_id;
    if (
      clientId !== undefined &&
      clientId !== null &&
      clientId !== "" &&
      String(clientId) !== app.clientId
    ) {
      throw new OAuthError(401, "invalid_client", "client_id does not match the JWT issuer");
    }
    if (variant.accountId !== undefined && !app.accountIds?.has(variant.accountId)) {
      throw new OAuthError(400, "access_deny", "the account has not authorised this app");
    }
    if (variant.enterpriseId !== undefined && !app.enterpriseIds?.has(variant.enterpriseId)) {
      throw new OAuthError(400, "access_deny", "the app is not a privileged app of the enterprise");
    }
    const lifetime = state.faults.tokenLifetimeSeconds() ?? duration;
    // The token carries the JWT's session_name, and the account or enterprise of the path: what
    // it may see depends on them (§12.2).
    const owner: TokenOwner = { clientId: app.clientId, ...variant };
    if (sessionName !== undefined) owner.sessionName = sessionName;
    const { token, info } = state.tokens.issue(owner, lifetime, now);
    state.stats.tokenIssued(sessionName);
    sendJson(ctx, 200, { access_token: token, expires_in: info.expiresIn });
  } catch (error) {
    if (!(error instanceof OAuthError)) throw error;
    sendJson(ctx, error.status, {
      error_code: error.code,
      error_message: error.message,
      // Both fields, so go/py (error_code) and js device-style checks (error) all match (§2.4).
      error: error.code,
    });
  }
}

/** The account or enterprise the path names, checked against the body's copy (go, §12.1). */
function variantOf(
  path: string,
  body: Record<string, unknown>,
): { accountId?: string; enterpriseId?: string } {
  const account = ACCOUNT_PATH.exec(path);
  if (account) {
    const id = decode(account[1] ?? "");
    if (!/^\d{1,32}$/.test(id)) {
      throw new OAuthError(400, "invalid_request", "invalid request: account_id");
    }
    matchBody(body.account_id, id, "account_id");
    return { accountId: id };
  }
  const enterprise = ENTERPRISE_PATH.exec(path);
  if (enterprise) {
    const id = decode(enterprise[1] ?? "");
    if (id.trim() === "") {
      throw new OAuthError(400, "invalid_request", "invalid request: enterprise_id");
    }
    matchBody(body.enterprise_id, id, "enterprise_id");
    return { enterpriseId: id };
  }
  return {};
}

// null, absent, "" and 0 are "not sent" (§1.6); anything else must name the path's id. go sends
// the account id as a JSON number (an int64): a 19-digit one arrives rounded, so a number matches
// when the path's id rounds to it.
function matchBody(value: unknown, id: string, field: string): void {
  if (value === undefined || value === null || value === "" || value === 0) return;
  if (typeof value === "string" && value === id) return;
  if (typeof value === "number" && /^\d+$/.test(id) && Number(id) === value) return;
  throw new OAuthError(400, "invalid_request", `invalid request: ${field} differs from the path`);
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new OAuthError(400, "invalid_request", "invalid request: path");
  }
}

function durationOf(value: unknown): number {
  // null, absent and 0 all mean "default" (§1.6).
  if (value === undefined || value === null || value === 0) return DEFAULT_DURATION;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new OAuthError(400, "invalid_request", "invalid request: duration_seconds");
  }
  return Math.min(value, MAX_DURATION);
}
