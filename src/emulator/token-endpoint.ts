import { type Ctx, readJson, sendJson } from "./http-io.js";
import { OAuthError, verifyClientJwt } from "./jwt-verify.js";
import type { EmulatorState } from "./state.js";
import { bearer } from "./tokens.js";

const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/** Default token lifetime, docs:oauth_jwt.md:214 (§2.2). */
const DEFAULT_DURATION = 900;
/** Documented maximum; larger requests are clamped (§10.10 leaves reject-or-clamp open). */
const MAX_DURATION = 86_399;

/**
 * `POST /api/permission/oauth2/token` and its account/enterprise variants (§2.2): exchanges a
 * signed JWT for an access token that carries the JWT's `session_name`, if any (§12.2). The
 * body is read first so that a bad `grant_type` does not burn the JWT's single-use `jti`.
 * Answers flat `{access_token, expires_in}` (absolute Unix seconds, §2.3) or a flat OAuth error
 * `{error_code, error_message, error}` with 400/401, or 503 while a `token_down` fault is armed
 * (§2.4, §7.1). Token bodies have no `detail`: the docs show only these fields (§10.3); the log
 * id is in the `X-Tt-Logid` header.
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
    const lifetime = state.faults.tokenLifetimeSeconds() ?? duration;
    // The token carries the JWT's session_name: what it may see depends on it (§12.2).
    const owner = { clientId: app.clientId, sessionName };
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

function durationOf(value: unknown): number {
  // null, absent and 0 all mean "default" (§1.6).
  if (value === undefined || value === null || value === 0) return DEFAULT_DURATION;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new OAuthError(400, "invalid_request", "invalid request: duration_seconds");
  }
  return Math.min(value, MAX_DURATION);
}
