import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";

/** What the gateway knows about the request being served, across async calls. */
export interface RequestContext {
  /** Our request id: returned to the caller as `x-request-id` and in every log line. */
  readonly id: string;
  /** Coze log ids of the upstream calls made for this request (`X-Tt-Logid`). */
  readonly cozeLogIds: string[];
  /** The authenticated caller's key name, once known (never the key). */
  caller: string | undefined;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** A caller-supplied request id is kept when it is short and plain; anything else is replaced. */
const acceptable = /^[A-Za-z0-9._:-]{1,64}$/;

/** Runs `fn` inside a new request context; `incoming` is the caller's `x-request-id`, if any. */
export function withRequestContext<T>(
  incoming: string | undefined,
  fn: (ctx: RequestContext) => T,
): T {
  const ctx: RequestContext = {
    id: incoming !== undefined && acceptable.test(incoming) ? incoming : randomUUID(),
    cozeLogIds: [],
    caller: undefined,
  };
  return storage.run(ctx, () => fn(ctx));
}

/** The current request's context, or `undefined` outside a request. */
export function currentRequest(): RequestContext | undefined {
  return storage.getStore();
}

/** Records an upstream log id on the current request (at most 16, to stay bounded). */
export function noteCozeLogId(logId: string | undefined): void {
  const ctx = storage.getStore();
  if (logId && ctx && ctx.cozeLogIds.length < 16 && !ctx.cozeLogIds.includes(logId)) {
    ctx.cozeLogIds.push(logId);
  }
}

/** Records the authenticated caller's name on the current request. */
export function noteCaller(name: string): void {
  const ctx = storage.getStore();
  if (ctx) ctx.caller = name;
}
