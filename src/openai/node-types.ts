import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

/** A request as either Node HTTP server hands it over (HTTP/1.1, or the HTTP/2 compat API). */
export type NodeRequest = IncomingMessage | Http2ServerRequest;

/** A response as either Node HTTP server hands it over. */
export type NodeResponse = ServerResponse | Http2ServerResponse;
