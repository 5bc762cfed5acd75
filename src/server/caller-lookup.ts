import { createContextKey } from "@connectrpc/connect";
import { parseBearerToken } from "./bearer.js";
import type { Caller } from "./caller.js";
import type { NodeRequest } from "./http-response.js";

/**
 * The caller of an `Authorization` header sent on a connection, with the one `authenticate` of
 * the server: what every door and the Connect procedures use.
 */
export type CallerLookup = (connection: object, header: string | undefined) => Caller | undefined;

/**
 * Creates the lookup. A keep-alive client sends the same header on every request; checking it
 * again cost each request a SHA-256 and a comparison with every configured key (issue #6). So the
 * caller each connection last authenticated as is remembered with the exact header that did it.
 * Only a header the same connection sent before is compared with, and only a successful one is
 * kept, so the comparison tells nobody anything new; nothing outlives the connection.
 *
 * A remembered caller is used only while `current(caller)` holds (default: always): after a
 * config reload removed or rotated keys, the next request on the connection is authenticated
 * again, under the keys in force, so a removed key stops working at once on open connections.
 */
export function createCallerLookup(
  authenticate: (key: string) => Caller | undefined,
  current: (caller: Caller) => boolean = () => true,
): CallerLookup {
  const authenticated = new WeakMap<object, { header: string; caller: Caller }>();
  return (connection, header) => {
    if (header === undefined) return undefined;
    const memo = authenticated.get(connection);
    if (memo !== undefined && memo.header === header && current(memo.caller)) return memo.caller;
    const key = parseBearerToken(header);
    const caller = key === undefined ? undefined : authenticate(key);
    if (caller !== undefined) authenticated.set(connection, { header, caller });
    return caller;
  };
}

/** The connection a request came on: its socket, or its HTTP/2 session (whose streams share one). */
export function connectionOf(req: NodeRequest): object {
  return "stream" in req ? (req.stream.session ?? req.socket) : req.socket;
}

/** Context key under which the server puts the connection of each Connect call. */
export const connectionKey = createContextKey<object | undefined>(undefined, {
  description: "the connection the call came on",
});
