import { KeyObject } from "node:crypto";
import { tokenPath } from "./token-endpoint.js";

/** One Coze OAuth service app credential, with the options of the tokens it buys. */
export interface CozeCredential {
  /** Tells it from a personal access token (`PatCredential`); absent means `jwt`. */
  kind?: "jwt";
  /** API base URL, e.g. `https://api.coze.cn`; the token endpoint lives on it (coze-api.md §1.1). */
  baseUrl: string;
  /** The OAuth app id (JWT `iss`, body `client_id`). */
  clientId: string;
  /** The public key fingerprint (JWT `kid`). */
  publicKeyId: string;
  /**
   * The RSA private key, parsed once by whoever read it (config's `parsePrivateKey`); the cache
   * never parses PEM. A secret.
   */
  privateKey: KeyObject;
  /** End-user id for conversation isolation (JWT `session_name`); each gets its own token. */
  sessionName?: string;
  /**
   * Cross-account tokens: `POST /api/permission/oauth2/account/{accountId}/token`, for the
   * resources of an account (a workspace owner's UID, or an organisation id) that authorised the
   * app (coze-api.md §12.1).
   */
  accountId?: string;
  /**
   * Enterprise privileged apps: `POST /api/permission/oauth2/enterprise_id/{enterpriseId}/token`
   * (coze-api.md §12.1).
   */
  enterpriseId?: string;
  /** Requested token lifetime in seconds (`duration_seconds`), 1 to 86399. Default 3600. */
  durationSeconds?: number;
  /**
   * JWT `aud`. Default the base URL's host, port included when not the default one, like the go
   * and py SDKs (coze-api.md §2.1).
   */
  audience?: string;
  /**
   * How long before expiry a token is refreshed in the background, in ms. Overrides the cache's
   * `refreshMarginMs` for this credential.
   */
  refreshMarginMs?: number;
}

/** A credential checked by {@link checkCredential}: what a token source needs. */
export interface CredentialSettings {
  /** The cache key (see `TokenSource.key`). Holds no secret. */
  key: string;
  baseUrl: string;
  /** The token endpoint's full URL. */
  url: string;
  clientId: string;
  publicKeyId: string;
  privateKey: KeyObject;
  sessionName: string | undefined;
  accountId: string | undefined;
  enterpriseId: string | undefined;
  durationSeconds: number;
  audience: string;
  refreshMarginMs: number | undefined;
}

/**
 * Checks every field of `c`; the key only for being an RSA private key object, which signing
 * needs. The key of the result holds base URL, client id, key id, session name, account,
 * enterprise, duration and audience: everything that shapes a token, and no secret.
 *
 * @throws TypeError naming the field (`credential.baseUrl`, `credential.accountId`, ...).
 */
export function checkCredential(c: CozeCredential): CredentialSettings {
  if (typeof c !== "object" || c === null) throw new TypeError("credential must be an object");
  let base: URL;
  try {
    base = new URL(c.baseUrl);
  } catch {
    throw new TypeError("credential.baseUrl: must be an absolute http(s) URL");
  }
  if ((base.protocol !== "http:" && base.protocol !== "https:") || base.search || base.hash) {
    throw new TypeError("credential.baseUrl: must be an http(s) URL without query or fragment");
  }
  const baseUrl = `${base.origin}${base.pathname.replace(/\/+$/, "")}`;
  for (const field of ["clientId", "publicKeyId"] as const) {
    requireString(c[field], field);
  }
  for (const field of ["sessionName", "accountId", "enterpriseId", "audience"] as const) {
    if (c[field] !== undefined) requireString(c[field], field);
  }
  const durationSeconds = c.durationSeconds ?? 3600;
  // 86399 is the documented maximum (coze-api.md §2.2).
  if (!Number.isSafeInteger(durationSeconds) || durationSeconds < 1 || durationSeconds > 86399) {
    throw new TypeError("credential.durationSeconds: must be an integer from 1 to 86399");
  }
  if (c.refreshMarginMs !== undefined && !(c.refreshMarginMs >= 0)) {
    throw new TypeError("credential.refreshMarginMs: must be a number of ms, 0 or more");
  }
  let path: string;
  try {
    path = tokenPath(c.accountId, c.enterpriseId);
  } catch {
    throw new TypeError("credential.accountId: cannot be combined with credential.enterpriseId");
  }
  const privateKey: unknown = c.privateKey;
  if (
    !(privateKey instanceof KeyObject) ||
    privateKey.type !== "private" ||
    privateKey.asymmetricKeyType !== "rsa"
  ) {
    throw new TypeError("credential.privateKey: must be an RSA private KeyObject");
  }
  // go and py send the host with its port (coze-api.md §2.1, §9); URL.host drops default ports.
  const audience = c.audience ?? base.host;
  return withSession(
    {
      key: "",
      baseUrl,
      url: `${baseUrl}${path}`,
      clientId: c.clientId,
      publicKeyId: c.publicKeyId,
      privateKey,
      sessionName: undefined,
      accountId: c.accountId,
      enterpriseId: c.enterpriseId,
      durationSeconds,
      audience,
      refreshMarginMs: c.refreshMarginMs,
    },
    c.sessionName,
  );
}

/**
 * `settings` for session `sessionName` (JWT `session_name`, coze-api.md §12.2; `undefined` for
 * none), with the key that goes with it.
 */
export function withSession(
  settings: CredentialSettings,
  sessionName: string | undefined,
): CredentialSettings {
  const key = JSON.stringify([
    settings.baseUrl,
    settings.clientId,
    settings.publicKeyId,
    sessionName ?? null,
    settings.accountId ?? null,
    settings.enterpriseId ?? null,
    settings.durationSeconds,
    settings.audience,
  ]);
  return { ...settings, key, sessionName };
}

function requireString(value: unknown, field: string): void {
  if (typeof value !== "string" || value.trim() === "") {
    throw new TypeError(`credential.${field}: must be a non-empty string`);
  }
}
