import { ConnectError } from "@connectrpc/connect";
import type { LogFn } from "../observability/index.js";
import {
  type Caller,
  type CoreContext,
  CozeError,
  GatewayError,
  type RequestContext,
  type ServiceImpls,
} from "../service/index.js";
import type { AnswerFormat, FinishReason, StreamFormat } from "./answer-format.js";
import { clientGone, createCallContext } from "./call-context.js";
import type { CompletionExtras, CompletionMeta, OpenAiUsage } from "./completion-format.js";
import type { NodeResponse } from "./node-types.js";
import { OpenAiError, toOpenAiError } from "./openai-error.js";
import type { ChatCompletionRequest } from "./parse-request.js";
import { noteOpenAiFailure, sendJsonText, sendOpenAiError } from "./respond.js";
import { createSseStream, type SseStream } from "./sse-stream.js";

/** The door's log function: one structured line per call, never a key or a body. */
export type { LogFn };

/** One REST turn being answered (a chat completion or a response). */
export interface Turn {
  /** What to send, in Chat Completions terms (the Responses door maps its input to it). */
  request: ChatCompletionRequest;
  res: NodeResponse;
  caller: Caller;
  /** The incoming request's context (request id, Coze log ids), when the server made one. */
  context: RequestContext | undefined;
  /** Aborts when the server shuts down: open streams then end with an error event. */
  shutdown: AbortSignal | undefined;
  /** Aborts when the shutdown grace period is over: a unary answer then ends with a 503. */
  hardStop: AbortSignal | undefined;
  meta: CompletionMeta;
  /** How the door writes answers. */
  format: AnswerFormat;
  /**
   * Renames the fields of a 400 or 404 to the door's own request (the Responses door's `input`
   * items); applied to every error of the turn, after the producer's own hook.
   */
  rename?: ErrorHook;
  services: ServiceImpls;
  heartbeatMs: number;
  log: LogFn;
  onStreamOpened: (() => () => void) | undefined;
  /**
   * Called once the answer is complete and before its last bytes are written (issue 16: a
   * workflow's question is remembered before the caller can reply to it, on any replica).
   * Never rejects.
   */
  settle?: () => Promise<void> | undefined;
}

/** A successful non-stream answer. */
export interface UnaryAnswer {
  json: string;
  headers?: Record<string, string>;
}

/** Adjusts a mapped error, e.g. to rename fields the service named. */
export type ErrorHook = (err: OpenAiError) => OpenAiError;

/** Whether a layer made `err` on purpose (its facts are data), rather than a bug throwing it. */
function expected(err: unknown): boolean {
  return (
    err instanceof GatewayError ||
    err instanceof CozeError ||
    err instanceof ConnectError ||
    err instanceof OpenAiError
  );
}

/** Maps a failure to the client's error, logging (by name only) what no layer expected. */
function mapError(turn: Turn, err: unknown, hook: ErrorHook | undefined): OpenAiError {
  if (!expected(err)) {
    turn.log("error", "REST completion failed with an unexpected error", {
      model: turn.meta.model,
      error: err instanceof Error ? err.name : typeof err,
    });
  }
  const mapped = toOpenAiError(err);
  const renamed = hook ? hook(mapped) : mapped;
  return turn.rename ? turn.rename(renamed) : renamed;
}

/**
 * Runs a non-stream completion: `produce` calls the services with a context whose signal
 * aborts when the client goes away or the shutdown grace period is over, and its answer (or
 * error) is written once. A call cut by the end of the grace period is answered with the
 * server's reason (`Unavailable`: 503), not left to the closing connection (issue #13).
 */
export async function runUnary(
  turn: Turn,
  produce: (ctx: CoreContext) => Promise<UnaryAnswer>,
  hook?: ErrorHook,
): Promise<void> {
  const call = createCallContext(turn.res, turn.caller, turn.hardStop, turn.context);
  try {
    const answer = await produce(call.ctx);
    const settling = turn.settle?.();
    if (settling) await settling;
    sendJsonText(turn.res, 200, answer.json, call.withResponseHeaders(answer.headers ?? {}));
  } catch (err) {
    const { signal } = call.ctx;
    if (signal.reason === clientGone) return;
    const failure = signal.aborted ? signal.reason : err;
    sendOpenAiError(turn.res, mapError(turn, failure, hook), call.withResponseHeaders({}));
  } finally {
    call.release();
  }
}

/** What a stream producer gets. */
export interface StreamTurn {
  sse: SseStream;
  fmt: StreamFormat;
  ctx: CoreContext;
  /** Starts the stream (headers + the format's first events) unless it already started. */
  begin(headers?: Record<string, string>): void;
  /** Writes one event, waiting when the client reads slower than events come. */
  write(event: string): Promise<void> | undefined;
  /** Writes the format's last events (finish chunk, usage, `[DONE]`) and ends the stream. */
  finish(reason: FinishReason, extras: CompletionExtras, usage?: OpenAiUsage): void;
}

/**
 * Runs a streamed completion (issue #4 decision 7). The headers are held until `produce`
 * calls `begin` (usually at the first upstream event, so a failure before it still gets its
 * real HTTP status and a JSON body the SDKs turn into typed errors), or until `heartbeatMs`
 * passed, whichever is first. Then: the format's first events (the role chunk), events as they
 * come, heartbeats while silent, and `finish`. A failure after the start ends with the format's
 * failure events (`data: {"error": …}` without `[DONE]`, or `response.failed`); so does a server
 * shutdown, at once, even if the upstream is still blocked. A client
 * that goes away aborts the context (the service cancels the Coze work) and gets nothing more.
 */
export async function runStream(
  turn: Turn,
  produce: (s: StreamTurn) => Promise<void>,
  hook?: ErrorHook,
): Promise<void> {
  const { res } = turn;
  const call = createCallContext(res, turn.caller, turn.shutdown, turn.context);
  const fmt = turn.format.stream();
  const begin = (headers: Record<string, string> = {}) => {
    if (!sse.started && !sse.ended) sse.start(call.withResponseHeaders(headers), fmt.start());
  };
  const sse = createSseStream(res, {
    heartbeatMs: turn.heartbeatMs,
    onIdle: begin,
    onOpen: turn.onStreamOpened,
  });
  const fail = (err: unknown) => {
    const reason = call.ctx.signal.reason;
    if (reason === clientGone || sse.ended) return;
    const mapped = mapError(turn, call.ctx.signal.aborted ? reason : err, hook);
    if (sse.started) {
      // The 200 went out with the headers: the request's line and metrics take this status.
      noteOpenAiFailure(res, mapped, mapped.status);
      sse.end(fmt.fail(mapped));
    } else {
      sse.close();
      sendOpenAiError(res, mapped, call.withResponseHeaders({}));
    }
  };
  // Shutdown ends the stream now; the service's generator stops on the same signal later.
  const onAbort = () => fail(call.ctx.signal.reason);
  call.ctx.signal.addEventListener("abort", onAbort, { once: true });
  let settling: Promise<void> | undefined;
  try {
    await produce({
      sse,
      fmt,
      ctx: call.ctx,
      begin,
      write: (event) => sse.write(event),
      finish(reason, extras, usage) {
        begin();
        const last = fmt.finish(reason, extras, usage);
        settling = turn.settle?.()?.then(() => {
          if (!sse.ended) sse.end(last);
        });
        if (settling === undefined) sse.end(last);
      },
    });
    if (settling) await settling;
  } catch (err) {
    fail(err);
  } finally {
    call.ctx.signal.removeEventListener("abort", onAbort);
    sse.close();
    call.release();
  }
}
