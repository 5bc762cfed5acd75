import { newAccessToken } from "./ids.js";

/**
 * Who a token acts for: the app, and the end user when the JWT named one. Conversations and
 * chats belong to exactly this pair (coze-api.md §12.2).
 */
export interface TokenOwner {
  /** Client id of the app that bought the token. */
  clientId: string;
  /** The JWT's `session_name` claim; absent when the JWT had none or an empty one (§12.2). */
  sessionName?: string;
}

/** What an access token stands for. */
export interface TokenInfo extends TokenOwner {
  /** Expiry, absolute Unix seconds (the `expires_in` sent on the wire, §2.3). */
  expiresIn: number;
}

/** Access tokens issued by the emulator. Tokens never appear in logs or error messages. */
export interface TokenStore {
  /** Issues a token for `owner`, valid for `lifetimeSeconds` from `nowMs`. */
  issue(
    owner: TokenOwner,
    lifetimeSeconds: number,
    nowMs: number,
  ): { token: string; info: TokenInfo };
  /** The token's owner when it is known, unexpired at `nowMs` and not revoked. */
  check(token: string | undefined, nowMs: number): TokenInfo | undefined;
  /** Revokes every token issued so far. */
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
  return {
    issue(owner, lifetimeSeconds, nowMs) {
      if (tokens.size > 10_000) prune(nowMs);
      const token = newAccessToken();
      // `expires_in` is absolute Unix seconds (§2.3); the token dies exactly then.
      const info: TokenInfo = {
        clientId: owner.clientId,
        expiresIn: Math.floor(nowMs / 1000) + lifetimeSeconds,
      };
      if (owner.sessionName !== undefined) info.sessionName = owner.sessionName;
      tokens.set(token, { info, revoked: false });
      return { token, info: { ...info } };
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

/** The bearer credential of a request, if any (`Authorization: Bearer <x>`, any case). */
export function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1];
}
