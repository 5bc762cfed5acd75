import {
  type IncomingMessage,
  type OutgoingHttpHeader,
  type OutgoingHttpHeaders,
  ServerResponse,
} from "node:http";
import type { NodeResponse } from "./http-response.js";

/** The headers `writeHead` takes: an object, or names and values in turn (or pairs). */
type HeadHeaders = OutgoingHttpHeaders | readonly OutgoingHttpHeader[] | readonly string[][];

/**
 * The HTTP/1.1 response of every request the gateway serves (the listeners' `ServerResponse`).
 * The headers the gateway adds on the way to a handler (the request id, CORS, a limited key's
 * figures) wait in {@link added} and go out with the handler's own in its `writeHead`, or in the
 * head Node writes itself at the first write. `setHeader` would keep each of them in Node's
 * header dictionary, which is lower-cased, grown, sorted and copied again when the head is
 * written; a list given to `writeHead` is written as it comes (BENCHMARKS.md, "Response headers
 * in one list").
 *
 * Names and values are checked when the head is written (`setHeader` checks them at once): add
 * only values known to be valid, under names nothing else sets (a name also given to `writeHead`
 * would go out twice).
 */
export class GatewayResponse<
  Request extends IncomingMessage = IncomingMessage,
> extends ServerResponse<Request> {
  /** Header names and values in turn, written before any other header of the response. */
  readonly added: string[] = [];

  override writeHead(
    statusCode: number,
    reason?: string | HeadHeaders,
    headers?: HeadHeaders,
  ): this {
    const given = typeof reason === "string" ? headers : reason;
    const added: readonly OutgoingHttpHeader[] = this.added;
    // Node's signature types a list as mutable; it does not change it.
    const list = (added.length === 0 ? given : added.concat(flatList(given))) as
      | OutgoingHttpHeaders
      | OutgoingHttpHeader[]
      | undefined;
    return typeof reason === "string"
      ? super.writeHead(statusCode, reason, list)
      : super.writeHead(statusCode, list);
  }
}

/** `headers` as names and values in turn. */
function flatList(headers: HeadHeaders | undefined): OutgoingHttpHeader[] {
  if (headers === undefined) return [];
  if (Array.isArray(headers)) {
    if (headers.length === 0 || !Array.isArray(headers[0])) return headers as OutgoingHttpHeader[];
    return (headers as readonly string[][]).flatMap(([name, value]) => [
      name as string,
      value as string,
    ]);
  }
  const list: OutgoingHttpHeader[] = [];
  const record = headers as OutgoingHttpHeaders;
  for (const name in record) {
    const value = record[name];
    if (value !== undefined) list.push(name, value);
  }
  return list;
}

/**
 * Adds a header of the gateway's own to `res` before its handler writes it: kept for the head of
 * an HTTP/1.1 response ({@link GatewayResponse}), set on any other. `name` and `value` must be
 * valid; `name` must be one that nothing else sets on the response.
 */
export function addHeader(res: NodeResponse, name: string, value: string): void {
  if (res instanceof GatewayResponse) res.added.push(name, value);
  else res.setHeader(name, value);
}

/** {@link addHeader} for each of `headers` (a limited key's figures). */
export function addHeaders(res: NodeResponse, headers: Readonly<Record<string, string>>): void {
  if (res instanceof GatewayResponse) {
    for (const name in headers) res.added.push(name, headers[name] as string);
  } else {
    for (const name in headers) res.setHeader(name, headers[name] as string);
  }
}
