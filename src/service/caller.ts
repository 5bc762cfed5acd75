import { createContextKey } from "@connectrpc/connect";
import { modelAllowed } from "../config/index.js";
import type { CoreContext } from "./core-context.js";
import { inProcessTenant, type Tenant } from "./tenant.js";

/** Who is calling. The server's auth step puts it into every handler context. */
export interface Caller {
  /** The API key's configured name (never the key). */
  name: string;
  /** Model names or `prefix*` patterns the key may use; `undefined` allows every model. */
  models: readonly string[] | undefined;
  /** What the key reaches: the ids handed to it, its Coze session and user ids. */
  tenant: Tenant;
}

/** Context key under which the server stores the authenticated {@link Caller}. */
export const callerKey = createContextKey<Caller | undefined>(undefined, {
  description: "the authenticated caller",
});

/** The caller of a handler; `undefined` only when no auth step ran (in-process tests). */
export function callerOf(ctx: CoreContext): Caller | undefined {
  return ctx.values.get(callerKey);
}

/** The tenant of a handler's caller; in process (no auth step ran) a tenant of its own. */
export function tenantOf(ctx: CoreContext): Tenant {
  return ctx.values.get(callerKey)?.tenant ?? inProcessTenant;
}

/** Whether `caller` may use `model` under its key's allow-list (no caller: in-process use). */
export function mayUse(caller: Caller | undefined, model: string): boolean {
  return caller === undefined || modelAllowed(caller, model);
}
