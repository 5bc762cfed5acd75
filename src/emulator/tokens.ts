import { randomBytes } from "node:crypto";
import { newAccessToken } from "./ids.js";
import type { PatOptions } from "./types.js";

/**
 * Who a token acts for. Conversations and chats belong to exactly one owner (coze-api.md §12.2:
 * "app or account, and session_name"): an app's own tokens act for the app; a cross-account
 * token for the account that authorised the app, an enterprise token for the enterprise, and a
 * personal access token for the account that made it (§11, §12.1).
 */
export interface TokenOwner {
  /** Client id of the app that bought the token; for a personal access token, its account. */
  clientId: string;
  /** The JWT's `session_name` claim; absent when the JWT had none or an empty one (§12.2). */
  sessionName?: string;
  /** The account a cross-account token or a personal access token acts in (§12.1, §11.1). */
  accountId?: string;
  /** The enterprise an enterprise privileged app's token acts in (§12.1). */
  enterpriseId?: string;
}

/** What an access token stands for. */
export interface TokenInfo extends TokenOwner {
  /** Expiry, absolute Unix seconds (the `expires_in` sent on the wire, §2.3). */
  expiresIn: number;
  /**
   * A personal access token's permission points, as endpoint families (the part of an
   * endpoint name before its first dot: `chat`, `workflow`, `files`); absent for OAuth tokens
   * and for a PAT with every permission. A call outside them answers 4101 (§11.1, §11.3).
   */
  permissions?: readonly string[];
}

/** Access tokens issued by the emulator. Tokens never appear in logs or error messages. */
export interface TokenStore {
  /** Issues an OAuth token (`czs_…`) for `owner`, valid for `lifetimeSeconds` from `nowMs`. */
  issue(
    owner: TokenOwner,
    lifetimeSeconds: number,
    nowMs: number,
  ): { token: string; info: TokenInfo };
  /**
   * Registers a personal access token (`pat_` and 64 letters and digits, the one unmasked shape
   * seen, §11.1) for `owner`, expiring at `expiresIn` (absolute Unix seconds), limited to
   * `permissions` when given.
   */
  issuePat(
    owner: TokenOwner,
    expiresIn: number,
    permissions?: readonly string[],
  ): { token: string; info: TokenInfo };
  /** The token's owner when it is known, unexpired at `nowMs` and not revoked. */
  check(token: string | undefined, nowMs: number): TokenInfo | undefined;
  /** Revokes every token issued so far, personal access tokens included. */
  revokeAll(): void;
  /** Forgets revocations (revoked, unexpired tokens work again). */
  clearRevocations(): void;
}

interface Entry {
  info: TokenInfo;
  revoked: boolean;
}

/** Creates an empty token store. */
export function createTokenStore(): TokenStore {
  const tokens = new Map<string, Entry>();
  const prune = (nowMs: number) => {
    for (const [token, entry] of tokens) {
      if (entry.info.expiresIn * 1000 <= nowMs) tokens.delete(token);
    }
  };
  const store = (token: string, info: TokenInfo) => {
    tokens.set(token, { info, revoked: false });
    return { token, info: { ...info } };
  };
  return {
    issue(owner, lifetimeSeconds, nowMs) {
      if (tokens.size > 10_000) prune(nowMs);
      // `expires_in` is absolute Unix seconds (§2.3); the token dies exactly then.
      return store(newAccessToken(), {
        ...ownerOf(owner),
        expiresIn: Math.floor(nowMs / 1000) + lifetimeSeconds,
      });
    },
    issuePat(owner, expiresIn, permissions) {
      const info: TokenInfo = { ...ownerOf(owner), expiresIn };
      if (permissions !== undefined) info.permissions = [...permissions];
      return store(newPat(), info);
    },
    check(token, nowMs) {
      const entry = token === undefined ? undefined : tokens.get(token);
      if (!entry || entry.revoked || nowMs >= entry.info.expiresIn * 1000) return undefined;
      return { ...entry.info };
    },
    revokeAll() {
      for (const entry of tokens.values()) entry.revoked = true;
    },
    clearRevocations() {
      for (const entry of tokens.values()) entry.revoked = false;
    },
  };
}

const day = 86_400;

/** The account personal access tokens belong to when their options name none. */
export const DEFAULT_PAT_ACCOUNT = "7000000000000000001";

/**
 * Checks `options` and registers a personal access token in `store` (see `Emulator.createPat`).
 *
 * @throws TypeError naming the option out of range.
 */
export function createPat(
  store: TokenStore,
  options: PatOptions,
  nowMs: number,
): { token: string; expiresIn: number } {
  const lifetime = options.lifetimeSeconds ?? 30 * day;
  if (!Number.isInteger(lifetime) || lifetime < day || lifetime > 30 * day) {
    throw new TypeError(
      "lifetimeSeconds must be an integer from 86400 (1 day) to 2592000 (30 days)",
    );
  }
  const { permissions } = options;
  if (
    permissions !== undefined &&
    (!Array.isArray(permissions) || permissions.some((p) => typeof p !== "string" || p === ""))
  ) {
    throw new TypeError('permissions must be a list of endpoint families, e.g. ["chat"]');
  }
  const accountId = options.accountId ?? DEFAULT_PAT_ACCOUNT;
  if (!/^\d{1,32}$/.test(accountId)) throw new TypeError("accountId must be a digit string");
  const expiresIn = Math.floor(nowMs / 1000) + lifetime;
  const { token } = store.issuePat({ clientId: accountId, accountId }, expiresIn, permissions);
  return { token, expiresIn };
}

/** The owner fields of `token` alone (no expiry, no permissions), absent ones left out. */
export function ownerOf(token: TokenOwner): TokenOwner {
  const owner: TokenOwner = { clientId: token.clientId };
  if (token.sessionName !== undefined) owner.sessionName = token.sessionName;
  if (token.accountId !== undefined) owner.accountId = token.accountId;
  if (token.enterpriseId !== undefined) owner.enterpriseId = token.enterpriseId;
  return owner;
}

/**
 * Whether two owners are the same for isolation (§12.2): the same principal (the account, else
 * the enterprise, else the app) and the same `session_name` or none. A personal access token of
 * an account and a cross-account token for it act in the same account.
 */
export function sameOwner(a: TokenOwner, b: TokenOwner): boolean {
  return principal(a) === principal(b) && a.sessionName === b.sessionName;
}

function principal(o: TokenOwner): string {
  if (o.accountId !== undefined) return `account:${o.accountId}`;
  if (o.enterpriseId !== undefined) return `enterprise:${o.enterpriseId}`;
  return `app:${o.clientId}`;
}

/** Whether `token` may call `endpoint`: OAuth tokens may; a PAT within its permissions. */
export function permits(token: TokenInfo, endpoint: string): boolean {
  if (token.permissions === undefined) return true;
  const family = endpoint.split(".", 1)[0] ?? endpoint;
  return token.permissions.includes(family);
}

const alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

function newPat(): string {
  // 62 letters and digits from random bytes; the few values past 248 are skipped, so each
  // character is uniform.
  let out = "pat_";
  while (out.length < 68) {
    for (const byte of randomBytes(80)) {
      if (byte < 248 && out.length < 68) out += alphanumerics[byte % 62];
    }
  }
  return out;
}

/** The bearer credential of a request, if any (`Authorization: Bearer <x>`, any case). */
export function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1];
}
