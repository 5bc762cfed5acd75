import { CozeError, fromTransportError } from "./errors.js";
import type { AccessTokens } from "./http.js";

/**
 * A personal access token as a channel's credential instead of an OAuth app (coze-api.md §11):
 * what new-api's plain "Coze" channel used.
 */
export interface PatCredential {
  kind: "pat";
  /** The token, sent as `Authorization: Bearer` unchanged. A secret. */
  token: string;
}

/** Options for {@link createPatTokens}. */
export interface PatTokensOptions {
  /**
   * The personal access token, sent as `Authorization: Bearer` unchanged (coze-api.md §11.1).
   * A secret: it never reaches an error, a log line or metrics.
   */
  token: string;
  /** What errors name as the token's owner, e.g. `channel cn-pat`. Not secret. */
  label: string;
}

/**
 * The access tokens of a personal access token: always that token, with no token request ever
 * (a PAT is made in the Coze console and cannot be refreshed, introspected or renewed, §11.1,
 * §11.2). Coze refusing it (4100 or 700012006: unknown, expired or revoked; 4101: a permission
 * point or workspace it lacks, §11.3) is final: the call is not sent again, and fails with the
 * same code, status, Coze code and log id, plus a hint naming `label` and what to do.
 *
 * @throws TypeError when `token` is empty or holds whitespace or control characters (it goes
 *   into an HTTP header), or `label` is empty.
 */
export function createPatTokens(options: PatTokensOptions): AccessTokens {
  const { token, label } = options;
  // Printable ASCII without spaces: anything else in a header is refused or, worse, injected.
  if (typeof token !== "string" || !/^[\x21-\x7e]+$/.test(token)) {
    throw new TypeError("personal access token must be printable ASCII without spaces");
  }
  if (typeof label !== "string" || label === "") throw new TypeError("label must be non-empty");
  return {
    getToken(signal) {
      if (signal?.aborted) {
        return Promise.reject(fromTransportError("token", signal.reason, signal));
      }
      return Promise.resolve(token);
    },
    cachedToken: () => token,
    invalidate() {
      // Nothing to drop: `refused` ends the call instead.
    },
    refused(error) {
      const hint =
        error.code === "permission"
          ? `${label}: Coze refused its personal access token for this call: the token lacks the permission or the workspace; add them to the token in the Coze console`
          : `${label}: Coze refused its personal access token: it is unknown, expired or revoked; make a new one in the Coze console and put it in the channel's credentials`;
      return new CozeError(error.code, `${error.message}: ${hint}`, {
        step: error.step,
        status: error.status,
        cozeCode: error.cozeCode,
        cozeMessage: error.cozeMessage,
        logId: error.logId,
        retryAfterMs: error.retryAfterMs,
        cause: error,
        hint,
      });
    },
  };
}
