import { hash } from "node:crypto";
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import { modelAllowed } from "../config/index.js";

/** Who is calling. The server's auth step puts it into every handler context. */
export interface Caller {
  /** The API key's configured name (never the key). */
  name: string;
  /** Model names or `prefix*` patterns the key may use; `undefined` allows every model. */
  models: readonly string[] | undefined;
}

/** Context key under which the server stores the authenticated {@link Caller}. */
export const callerKey = createContextKey<Caller | undefined>(undefined, {
  description: "the authenticated caller",
});

/** The caller of a handler; `undefined` only when no auth step ran (in-process tests). */
export function callerOf(ctx: HandlerContext): Caller | undefined {
  return ctx.values.get(callerKey);
}

/**
 * The Coze user id for a caller that sent none: stable per API key, so Coze's per-user memory
 * and conversations stay with the key, and never random (the REST issue's rule).
 */
export function defaultUserId(caller: Caller | undefined): string {
  if (caller === undefined) return anonymousUserId;
  let id = userIds.get(caller);
  if (id === undefined) {
    id = userIdFor(caller.name);
    userIds.set(caller, id);
  }
  return id;
}

function userIdFor(name: string): string {
  return `gw-${hash("sha256", name).slice(0, 24)}`;
}

const anonymousUserId = userIdFor("anonymous");
/** Callers come from the configuration: computed once per caller, not per request. */
const userIds = new WeakMap<Caller, string>();

/** Whether `caller` may use `model` under its key's allow-list (no caller: in-process use). */
export function mayUse(caller: Caller | undefined, model: string): boolean {
  return caller === undefined || modelAllowed(caller, model);
}
