import type { Caller } from "./caller.js";
import {
  closeIfBodyUnread,
  type NodeRequest,
  type NodeResponse,
  sendJson,
} from "./http-response.js";
import { noteFailure, requestOf } from "./request-context.js";

/**
 * Why the server refused a request on a door's behalf, before (or instead of) its handler: a
 * stable code, a short safe message and the headers that go with it. The door words it in its
 * own error format ({@link Door.writeError}); the server knows no door's format.
 */
export interface Refusal {
  status: number;
  code: RefusalCode;
  /** Short, safe and ours: it reaches the client verbatim. */
  message: string;
  headers?: Record<string, string>;
}

/** What the server refuses by itself. */
export type RefusalCode =
  | "bad_request"
  | "unauthenticated"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "request_timeout"
  | "too_large"
  | "too_many_streams"
  | "requests_limited"
  | "tokens_limited"
  | "quota_exhausted"
  | "unavailable"
  | "internal";

/** Writes a {@link Refusal} as a complete response. */
export type ErrorWriter = (res: NodeResponse, refusal: Refusal) => void;

/**
 * The server's own error body, where no door's applies (Connect paths, probes, unknown paths):
 * `{"error":{"code","message"}}`.
 */
export const writeServerError: ErrorWriter = (res, refusal) => {
  noteRefusal(res, refusal);
  sendJson(
    res,
    refusal.status,
    { error: { code: refusal.code, message: refusal.message } },
    refusal.headers,
  );
};

/** Notes a refusal's code as the request's failure reason (for its log line and metrics). */
function noteRefusal(res: NodeResponse, refusal: Refusal): void {
  noteFailure(requestOf(res.req), refusal.code);
}

/** What a door's handler gets besides the request and response. */
export interface DoorCall {
  /** The authenticated caller; `undefined` only for a public door. */
  caller: Caller | undefined;
  /** Aborts when the server starts shutting down: open streams should end then. */
  shutdown: AbortSignal;
  /**
   * Aborts when the shutdown grace period is over: unary answers still under way should end
   * then, with the reason's `Code.Unavailable` (a 503); their connections are closed after.
   */
  hardStop: AbortSignal;
}

/**
 * A front door mounted on the server's one port for plain HTTP (Connect procedures go to the
 * Connect adapter): the OpenAI-compatible API, the metrics page, the playground.
 */
export interface Door {
  /** The path it owns, without a trailing slash (`/v1`): that path and every path below it. */
  path: string;
  /**
   * `key`: every request needs a valid API key (`authenticate`, the one that Connect calls use
   * too), else 401; while the server drains, 503; the body and per-key limits apply. `public`:
   * no key; the door guards itself.
   */
  auth: "key" | "public";
  /** A bounded label for metrics and log lines, e.g. `POST /v1/chat/completions`. */
  label(method: string, path: string): string;
  /** Serves a request; `true` when it answered, `false` gives the door's 404. */
  handle(req: NodeRequest, res: NodeResponse, call: DoorCall): boolean | Promise<boolean>;
  /** Words the server's refusals of requests to this door. Default {@link writeServerError}. */
  writeError?: ErrorWriter;
  /**
   * Whether a request counts against its key's limits (and may be refused by them); default
   * true. A request that does not count still carries the key's figures (a balance read).
   */
  metered?(method: string, path: string): boolean;
}

/** The door that owns `path`, if any: the first whose path equals it or is a parent of it. */
export function doorFor(doors: readonly Door[], path: string): Door | undefined {
  for (const door of doors) {
    if (path === door.path || (path.startsWith(door.path) && path[door.path.length] === "/")) {
      return door;
    }
  }
  return undefined;
}

/**
 * The error writer for `door`, or the server's own. Whoever words it, a refusal closes an
 * HTTP/1.1 connection whose request body was not read rather than read a body of any length.
 */
export function errorWriterOf(door: Door | undefined): ErrorWriter {
  const write = door?.writeError;
  if (write === undefined) return writeServerError;
  return (res, refusal) => {
    noteRefusal(res, refusal);
    closeIfBodyUnread(res);
    write(res, refusal);
  };
}

/** A handler of plain HTTP that needs no key; `true` when it answered the request. */
export type PublicHttpHandler = (req: NodeRequest, res: NodeResponse) => boolean | Promise<boolean>;

/** A door that needs no key, for pages such as `/metrics` and `/playground`. */
export function publicDoor(path: string, handle: PublicHttpHandler): Door {
  return { path, auth: "public", label: (method) => `${method} ${path}`, handle };
}
