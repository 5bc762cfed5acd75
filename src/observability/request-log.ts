import type { LogFn } from "./logger.js";

/** The one log line of a finished request, by field. */
export interface RequestLine {
  requestId: string | undefined;
  /** The procedure (`package.Service/Method`) or the route label (`POST /v1/chat/completions`). */
  method: string;
  /** The Connect code name (`ok`, `not_found`, …) or the HTTP status. */
  code: string;
  durationMs: number;
  caller: string | undefined;
  /** Coze log ids of the upstream calls made for the request, when there were any. */
  cozeLogIds: readonly string[] | undefined;
  /** The client went away before its answer was written. */
  aborted: boolean;
}

/**
 * Writes the line of a finished request: `LogFn(level, "request", fields)` with `line`'s fields
 * in order (absent ones and `aborted: false` left out).
 */
export type RequestLogFn = (level: "info" | "warn", line: RequestLine) => void;

/** {@link RequestLogFn} through a {@link LogFn}. */
export function requestLogVia(log: LogFn): RequestLogFn {
  return (level, line) =>
    log(level, "request", {
      requestId: line.requestId,
      method: line.method,
      code: line.code,
      durationMs: line.durationMs,
      caller: line.caller,
      cozeLogIds: line.cozeLogIds,
      aborted: line.aborted ? true : undefined,
    });
}
