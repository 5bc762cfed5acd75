import type { LogFn } from "./logger.js";

/** How a request ended, for its log line and the per-key metrics. */
export type RequestOutcome = "ok" | "client_error" | "error" | "canceled";

/** The one log line of a finished request, by field. */
export interface RequestLine {
  requestId: string | undefined;
  /** The W3C trace id: the caller's `traceparent`'s, or ours when tracing is on. */
  traceId: string | undefined;
  /** The procedure (`package.Service/Method`) or the route label (`POST /v1/chat/completions`). */
  method: string;
  /**
   * The Connect code name (`ok`, `not_found`, …) or the HTTP status; for a REST stream that failed
   * after its 200 went out, the status its error has.
   */
  code: string;
  outcome: RequestOutcome;
  durationMs: number;
  /** The API key's name (never the key). */
  caller: string | undefined;
  /** The client's address (behind a trusted proxy, from `X-Forwarded-For`). */
  client: string | undefined;
  /** The model as the caller named it, its kind and the channel that served it. */
  model: string | undefined;
  kind: string | undefined;
  channel: string | undefined;
  /** Coze's token counts in the request's answers; absent when the core was not reached. */
  promptTokens: number | undefined;
  completionTokens: number | undefined;
  /** Why it failed (`unknown_key`, `model_not_allowed`, `invalid_argument`, …) and the field. */
  reason: string | undefined;
  field: string | undefined;
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
      traceId: line.traceId,
      method: line.method,
      code: line.code,
      outcome: line.outcome,
      durationMs: line.durationMs,
      caller: line.caller,
      client: line.client,
      model: line.model,
      kind: line.kind,
      channel: line.channel,
      promptTokens: line.promptTokens,
      completionTokens: line.completionTokens,
      reason: line.reason,
      field: line.field,
      cozeLogIds: line.cozeLogIds,
      aborted: line.aborted ? true : undefined,
    });
}
