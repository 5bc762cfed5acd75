import { type CredentialSettings, withSession } from "./credential.js";
import {
  type CachedSource,
  createTokenSource,
  type SourceContext,
  type TokenSource,
} from "./token-source.js";

/**
 * The token sources of many sessions of one credential (one per end user, coze-api.md §12.2),
 * each with a value made for it (a client on that source), at most `maxSessions` at a time.
 */
export interface SessionTokens<T> {
  /**
   * The value of session `sessionName` of `group` (e.g. the API key the end user belongs to):
   * the same while the session stays cached, so its callers share one token, one fetch and one
   * refresh. Using a session makes it its group's most recently used. A new session past the
   * bound drops one (an `evicted` event), which fetches a new token when it comes back: the
   * least recently used session of the group holding the most (of those, the one unused the
   * longest), so a group that makes sessions without end drops its own, not the others'.
   */
  get(sessionName: string, group?: string): T;
  /** Sessions cached now. */
  readonly size: number;
  /**
   * Forgets every session and leaves the token cache (its figures no longer count them): for a
   * channel a config reload replaced. The cache is not used after.
   */
  release(): void;
}

/** Options of {@link createSessionTokens}. */
export interface SessionTokensOptions<T> {
  /** Most sessions cached at once, across groups; a positive integer. */
  maxSessions: number;
  /** Makes the value kept with a session's source. */
  attach: (source: TokenSource) => T;
}

interface Entry<T> {
  cached: CachedSource;
  value: T;
  /** When it was last used, on a counter of uses. */
  used: number;
}

/** What a token cache keeps of its session caches: a way to count, drop and scan them. */
export interface SessionStore {
  clear(): void;
  /** Sessions holding an unexpired token. */
  tokensHeld(): number;
}

/**
 * A bounded cache of per-session sources of `base`, with `onEvict` told of each drop and
 * `onRelease` of {@link SessionTokens.release}.
 *
 * @throws TypeError when `maxSessions` is not a positive integer.
 */
export function createSessionTokens<T>(
  base: CredentialSettings,
  ctx: SourceContext,
  options: SessionTokensOptions<T>,
  onEvict: (source: TokenSource) => void,
  onRelease: () => void = () => {},
): { sessions: SessionTokens<T>; store: SessionStore } {
  const { maxSessions, attach } = options;
  if (!Number.isSafeInteger(maxSessions) || maxSessions < 1) {
    throw new TypeError("maxSessions must be a positive integer");
  }
  // Per group, a Map whose insertion order is its recency order (oldest first).
  const groups = new Map<string, Map<string, Entry<T>>>();
  let size = 0;
  let uses = 0;

  const evictOne = () => {
    let victim: Map<string, Entry<T>> | undefined;
    let victimGroup = "";
    for (const [name, group] of groups) {
      const oldest = group.values().next().value;
      const best = victim?.values().next().value;
      if (
        victim === undefined ||
        group.size > victim.size ||
        (group.size === victim.size && (oldest?.used ?? 0) < (best?.used ?? 0))
      ) {
        victim = group;
        victimGroup = name;
      }
    }
    const first = victim?.entries().next().value;
    if (victim === undefined || first === undefined) return;
    victim.delete(first[0]);
    if (victim.size === 0) groups.delete(victimGroup);
    size--;
    onEvict(first[1].cached.source);
  };

  const sessions: SessionTokens<T> = {
    get size() {
      return size;
    },
    release() {
      groups.clear();
      size = 0;
      onRelease();
    },
    get(sessionName, groupName = "") {
      let group = groups.get(groupName);
      const found = group?.get(sessionName);
      if (group !== undefined && found !== undefined) {
        group.delete(sessionName);
        group.set(sessionName, found);
        found.used = ++uses;
        return found.value;
      }
      if (group === undefined) {
        group = new Map();
        groups.set(groupName, group);
      }
      const cached = createTokenSource(withSession(base, sessionName), ctx);
      const entry: Entry<T> = { cached, value: attach(cached.source), used: ++uses };
      group.set(sessionName, entry);
      size++;
      if (size > maxSessions) evictOne();
      return entry.value;
    },
  };
  return {
    sessions,
    store: {
      clear() {
        groups.clear();
        size = 0;
      },
      tokensHeld() {
        let n = 0;
        for (const group of groups.values()) {
          for (const entry of group.values()) if (entry.cached.holdsToken()) n++;
        }
        return n;
      },
    },
  };
}
