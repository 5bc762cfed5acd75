import { isoTime, type LogFn, type Logger } from "./logger.js";

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
 * Writes the line of a finished request: the same line as `LogFn(level, "request", fields)`
 * with `line`'s fields in order (absent ones and `aborted: false` left out), by a path made
 * for the one line every request writes (issue #6).
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

/**
 * {@link RequestLogFn} into `logger`'s destination, at its level. Every request writes this line:
 * formatted here rather than by pino's field-by-field serializer (issue #6, c=1), into the same
 * destination, so lines keep their order. Its fields are ids, names and numbers (none is
 * secret-named); JSON.stringify quotes strings the way pino does. A test compares it with pino's
 * line byte for byte.
 */
export function createRequestLog(
  logger: Pick<Logger, "isLevelEnabled" | "writeLine">,
): RequestLogFn {
  return (level, line) => {
    if (!logger.isLevelEnabled(level)) return;
    let text = `{"level":"${level}"${isoTime()}`;
    if (line.requestId !== undefined) text += `,"requestId":${JSON.stringify(line.requestId)}`;
    text += `,"method":${JSON.stringify(line.method)},"code":${JSON.stringify(line.code)}`;
    text += `,"durationMs":${Number.isFinite(line.durationMs) ? line.durationMs : null}`;
    if (line.caller !== undefined) text += `,"caller":${JSON.stringify(line.caller)}`;
    if (line.cozeLogIds !== undefined) text += `,"cozeLogIds":${JSON.stringify(line.cozeLogIds)}`;
    if (line.aborted) text += `,"aborted":true`;
    logger.writeLine(`${text},"msg":"request"}\n`);
  };
}
