import {
  constants,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
} from "node:http2";
import { type Refusal, writeServerError } from "./doors.js";

/** Options of {@link createHttp2Timeouts}. */
export interface Http2TimeoutsOptions {
  /** How long a session may stay open without an open stream, in ms. */
  idleTimeoutMs: number;
  /** How long a stream may take to send its whole request (headers and body), in ms. */
  requestTimeoutMs: number;
  /** How often open requests are checked against their deadline, in ms. */
  checkIntervalMs: number;
}

/**
 * The deadlines Node's HTTP/2 server lacks. Node's session `timeout` counts any traffic, so it
 * would cut an authenticated stream that waits a minute for upstream data and keep a session
 * alive that only sends PINGs; and nothing bounds a stream that sent its headers and then
 * nothing (issue 13: idle h2c sessions and such streams stayed open for ever).
 */
export interface Http2Timeouts {
  /** Watches a new session: once it has had no open stream for `idleTimeoutMs`, it gets GOAWAY. */
  session(session: ServerHttp2Session): void;
  /** A stream's request arrived (its headers); call {@link requestDone} when its response closes. */
  requestStarted(req: Http2ServerRequest, res: Http2ServerResponse): void;
  /** The stream of `req` closed, whatever the reason. */
  requestDone(req: Http2ServerRequest, res: Http2ServerResponse): void;
  /** Stops checking deadlines (server shutdown). */
  close(): void;
}

/** Per session: its open streams and the timer that closes it when idle. */
interface SessionState {
  open: number;
  timer: NodeJS.Timeout;
}

/** Where a session, and each of its requests, keep their {@link SessionState}. */
const stateOf = Symbol("coze-gateway.http2Session");
type Tagged = { [stateOf]?: SessionState };

/** The 408; the stream is then reset with NO_ERROR (RFC 9113 §8.1). */
const requestTimeout: Refusal = {
  status: 408,
  code: "request_timeout",
  message: "request not received in time",
};

/**
 * Creates the HTTP/2 deadlines. A stream whose request has not fully arrived (no END_STREAM
 * from the client) `requestTimeoutMs` after its headers gets 408 and is reset, or only reset
 * when its response had started. Requests that end with their headers (GET) are never tracked,
 * and a request that has arrived is dropped from the list at the next check, so a long stream
 * answering it is left alone. Sessions are closed gracefully (GOAWAY) once idle.
 */
export function createHttp2Timeouts(options: Http2TimeoutsOptions): Http2Timeouts {
  const { idleTimeoutMs, requestTimeoutMs } = options;
  /** Responses whose request body is still arriving, with the time its headers came. */
  const receiving = new Map<Http2ServerResponse, number>();

  const check = () => {
    const now = performance.now();
    for (const [res, started] of receiving) {
      const stream = res.stream;
      if (stream.destroyed || stream.closed || stream.state.remoteClose === 1) {
        receiving.delete(res);
      } else if (now - started >= requestTimeoutMs) {
        receiving.delete(res);
        if (res.headersSent) {
          stream.close(constants.NGHTTP2_CANCEL);
        } else {
          writeServerError(res, requestTimeout);
          // After the answer: the client may stop sending (RFC 9113 §8.1).
          stream.close(constants.NGHTTP2_NO_ERROR);
        }
      }
    }
  };
  const checker = setInterval(check, options.checkIntervalMs);
  checker.unref();

  return {
    session(session) {
      const state: SessionState = {
        open: 0,
        timer: setTimeout(() => {
          // With a stream open, the timer starts again when the last one closes.
          if (state.open === 0 && !session.closed && !session.destroyed) session.close();
        }, idleTimeoutMs).unref(),
      };
      (session as Tagged)[stateOf] = state;
      session.once("close", () => clearTimeout(state.timer));
    },

    requestStarted(req, res) {
      const session = req.stream.session as (ServerHttp2Session & Tagged) | undefined;
      const state = session?.[stateOf];
      if (state !== undefined) {
        state.open++;
        // The stream forgets its session when it closes: the request keeps the state.
        (req as Tagged)[stateOf] = state;
      }
      if (!req.stream.endAfterHeaders) receiving.set(res, performance.now());
    },

    requestDone(req, res) {
      const state = (req as Tagged)[stateOf];
      if (state !== undefined && --state.open === 0) state.timer.refresh();
      receiving.delete(res);
    },

    close() {
      clearInterval(checker);
      receiving.clear();
    },
  };
}
