import type { Dispatcher, FormData } from "undici";
import type { CallSpan, CozeRequest } from "./http.js";

/** Options for {@link createRequestOptions}. */
export interface RequestOptionsOptions {
  /** The Coze base URL; its path, if any, prefixes every request path. */
  base: URL;
  /** `User-Agent` sent upstream; none when absent or empty. */
  userAgent?: string;
  /** Most time to wait for response headers, in ms; 0 or not finite: none. */
  headersTimeoutMs: number;
  /** Longest silence on an open event stream, in ms; 0 or not finite: none. */
  streamIdleTimeoutMs: number;
  /** Longest silence on a unary response body, in ms; 0 or not finite: none. */
  requestTimeoutMs: number;
}

/**
 * Builds the undici options of one attempt of a request, with its token and signal, and the
 * trace context of `span` when the request is traced.
 */
export type RequestOptionsOf = (
  req: CozeRequest,
  token: string,
  signal: AbortSignal,
  stream: boolean,
  span?: CallSpan,
) => Dispatcher.RequestOptions;

/** A path the URL parser would leave as it is. */
const plainPath = /^(?:\/[A-Za-z0-9_-]+)+$/;

/**
 * Creates what puts a {@link CozeRequest} on the wire: the options of undici's pool `request`
 * (not undici's top-level `request`, which would parse the URL again). The token goes in
 * `authorization: Bearer`; a JSON body is serialized, a multipart form sent as it is.
 */
export function createRequestOptions(options: RequestOptionsOptions): RequestOptionsOf {
  const { base, userAgent } = options;
  const origin = base.origin;
  const basePath = base.pathname.replace(/\/+$/, "");
  const headersTimeout = undiciTimeout(options.headersTimeoutMs);
  const streamBodyTimeout = undiciTimeout(options.streamIdleTimeoutMs);
  const unaryBodyTimeout = undiciTimeout(options.requestTimeoutMs);

  /**
   * The request target (path and query) below the base URL. A plain path (segments of letters,
   * digits, `_` and `-`, as every Coze path is) is used as it is; anything else is normalized by
   * the URL parser. Query values are form-encoded, as `URLSearchParams` does.
   */
  function pathOf(req: CozeRequest): string {
    const path = plainPath.test(req.path)
      ? basePath + req.path
      : new URL(basePath + req.path, origin).pathname;
    let search: URLSearchParams | undefined;
    const query = req.query;
    for (const k in query) {
      const v = query[k];
      if (v !== undefined) {
        search ??= new URLSearchParams();
        search.set(k, String(v));
      }
    }
    return search === undefined ? path : `${path}?${search}`;
  }

  return (req, token, signal, stream, span) => {
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      accept: req.accept ?? (stream ? "text/event-stream, application/json" : "application/json"),
    };
    if (userAgent) headers["user-agent"] = userAgent;
    if (span !== undefined) {
      headers.traceparent = span.traceparent;
      if (span.tracestate !== undefined) headers.tracestate = span.tracestate;
    }
    let body: string | FormData | undefined;
    if (req.form !== undefined) {
      body = req.form;
    } else if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers["content-type"] = "application/json";
    }
    return {
      origin,
      path: pathOf(req),
      method: req.method,
      headers,
      body,
      signal,
      headersTimeout,
      bodyTimeout: stream ? streamBodyTimeout : unaryBodyTimeout,
    };
  };
}

/** undici takes a finite number of ms, 0 meaning none. */
function undiciTimeout(ms: number): number {
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}
