import { createHmac, hash, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * What a handed-out id stands for. The kind is part of what is authenticated, so a conversation
 * id cannot be presented as a chat or run id. `interrupt` is a streamed interrupt (resumed
 * through `stream_resume`), `run_interrupt` one in a run's reply (resumed through
 * `/v1/workflows/resume`, coze-api.md §14.3): the id says which endpoint answers it.
 */
export type HandleKind = "conversation" | "chat" | "run" | "interrupt" | "run_interrupt";

/**
 * One API key as a tenant: everything the gateway derives from the key and the server secret.
 * It holds no key and no server secret, only a key derived from both, and nothing in it can be
 * turned back into either.
 */
export interface Tenant {
  /**
   * The JWT `session_name` of this key's Coze tokens (coze-api.md §12.2): Coze keeps each key's
   * conversations, chats and variables apart too. `gw_` and 22 base64url characters;
   * `undefined` for the in-process tenant, whose calls use the channel's session-less token.
   */
  readonly sessionName: string | undefined;
  /**
   * Whether the key may name raw Coze ids (digits, made outside the gateway) besides the ids the
   * gateway handed it. Off unless the config's `raw_coze_ids` turns it on.
   */
  readonly rawIds: boolean;
  /** The id to hand out for Coze's `id` of `kind`: `{id}.{tag}`, bound to this key. */
  seal(kind: HandleKind, id: string): string;
  /**
   * The Coze id behind a handed-out id of `kind`, or `undefined` when it was not handed to this
   * key: another key's, forged, truncated, of another kind, or made with another server secret.
   * A raw Coze id passes only when {@link rawIds} is on. Never throws.
   */
  open(kind: HandleKind, handle: string): string | undefined;
  /**
   * The Coze `user_id` for the caller's end user `user` (`""` for the key's own default user):
   * `gw_` and 22 base64url characters, stable per key and user, not guessable without the
   * server secret, and never equal for two keys.
   */
  userId(user: string): string;
}

const tagLength = 22; // 16 bytes in base64url: 128 bits
// Coze ids are digit strings; an interrupt's event id is two joined by `/` (coze-api.md §5.2).
const cozeId = /^\d{1,32}(\/\d{1,32})?$/;

/**
 * The tenant of one API key. `serverSecret` is the config's `server_secret` (the same on every
 * replica, so ids handed out by one replica open on all of them); `keyHash` the SHA-256 of the
 * API key: a rotated key is a new tenant, and what the old key created is out of its reach.
 */
export function createTenant(
  serverSecret: Uint8Array,
  keyHash: Uint8Array,
  options: { rawIds?: boolean; session?: boolean } = {},
): Tenant {
  const key = createHmac("sha256", serverSecret)
    .update("coze-gateway tenant v1\0")
    .update(keyHash)
    .digest();
  // The tag: SHA-256 over the key and then the message, cut to its first 128 bits. A secret
  // prefix alone would let anyone who sees a whole digest extend the message (length extension);
  // cut to half, the digest no longer gives away the hash state that needs, which is why
  // SHA-512/256 resists it too. One one-shot hash per tag, where HMAC's two passes and its
  // object cost a chat turn more than the rest of the tenant check (BENCHMARKS.md).
  const prefix = `${key.toString("hex")}\0`;
  const mac = (label: string, value: string) =>
    hash("sha256", `${prefix}${label}\0${value}`, "buffer").subarray(0, 16);
  const derived = (label: string, value: string) => `gw_${mac(label, value).toString("base64url")}`;
  const rawIds = options.rawIds ?? false;
  const sessionName = options.session === false ? undefined : derived("session", "");
  // The default user's id is asked on every chat: derive it once.
  const defaultUser = derived("user", "");
  return {
    sessionName,
    rawIds,
    seal(kind, id) {
      return `${id}.${mac(kind, id).toString("base64url")}`;
    },
    open(kind, handle) {
      const dot = handle.indexOf(".");
      if (dot < 0) return rawIds && cozeId.test(handle) ? handle : undefined;
      const id = handle.slice(0, dot);
      const tag = handle.slice(dot + 1);
      if (!cozeId.test(id) || tag.length !== tagLength) return undefined;
      const given = Buffer.from(tag, "base64url");
      // Buffer.from skips characters outside the alphabet: insist that the text round-trips.
      if (given.length !== 16 || given.toString("base64url") !== tag) return undefined;
      return timingSafeEqual(given, mac(kind, id)) ? id : undefined;
    },
    userId(user) {
      return user === "" ? defaultUser : derived("user", user);
    },
  };
}

/**
 * The tenant of calls that passed no authentication step: services called in process, as tests
 * do. A secret of its own, so nothing it hands out opens for a real key; raw ids allowed.
 */
export const inProcessTenant: Tenant = createTenant(randomBytes(32), new Uint8Array(32), {
  rawIds: true,
  session: false,
});
