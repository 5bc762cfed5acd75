import { newAccessToken } from "./ids.js";

/** What an access token stands for. */
export interface TokenInfo {
  /** Client id of the app that bought the token. */
  clientId: string;
  /** Expiry, absolute Unix seconds (the `expires_in` sent on the wire, §2.3). */
  expiresIn: number;
}

/** Access tokens issued by the emulator. Tokens never appear in logs or error messages. */
export interface TokenStore {
  /** Issues a token valid for `lifetimeSeconds` from `nowMs`. */
  issue(
    clientId: string,
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

interface Entry extends TokenInfo {
  revoked: boolean;
}

/** Creates an empty token store. */
export function createTokenStore(): TokenStore {
  const tokens = new Map<string, Entry>();
  const prune = (nowMs: number) => {
    for (const [token, entry] of tokens) if (entry.expiresIn * 1000 <= nowMs) tokens.delete(token);
  };
  return {
    issue(clientId, lifetimeSeconds, nowMs) {
      if (tokens.size > 10_000) prune(nowMs);
      const token = newAccessToken();
      // `expires_in` is absolute Unix seconds (§2.3); the token dies exactly then.
      const info = { clientId, expiresIn: Math.floor(nowMs / 1000) + lifetimeSeconds };
      tokens.set(token, { ...info, revoked: false });
      return { token, info };
    },
    check(token, nowMs) {
      const entry = token === undefined ? undefined : tokens.get(token);
      if (!entry || entry.revoked || nowMs >= entry.expiresIn * 1000) return undefined;
      return { clientId: entry.clientId, expiresIn: entry.expiresIn };
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
