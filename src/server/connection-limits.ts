/**
 * How long the gateway's connections and requests may take, and how many streams they may hold
 * (the `server` config section's timeouts and caps). Every value is a positive integer.
 */
export interface ConnectionLimits {
  /**
   * Longest a connection may stay open with no request in flight, in ms: an HTTP/2 session
   * without an open stream gets GOAWAY, an idle HTTP/1.1 keep-alive connection is closed.
   */
  idleTimeoutMs: number;
  /**
   * Longest wait for a request's headers on HTTP/1.1, in ms; also how long a new connection may
   * stay silent before its first bytes, and how long its TLS handshake may take. At most
   * `requestTimeoutMs` (Node refuses more).
   */
  headersTimeoutMs: number;
  /**
   * Longest wait for a whole request, headers and body, in ms, on every protocol. Only the
   * request: a response (a stream) may last longer once the request is in.
   */
  requestTimeoutMs: number;
  /** HTTP/2 streams one connection may have open at once, advertised in its SETTINGS. */
  maxConcurrentStreams: number;
  /**
   * Requests, streams included, one API key may have in flight at once over all connections;
   * the next is refused with `Code.ResourceExhausted` (HTTP 429 from a door).
   */
  maxStreamsPerKey: number;
}

/**
 * How often request deadlines are checked, in ms: a quarter of the shorter of the headers and
 * request timeouts, from 10 ms to 1 s. A request is cut at most this long after its deadline;
 * checking a list now and then costs less than a timer per request (Node's own HTTP/1 server
 * does the same, every 30 s by default, which would let a 10 s deadline run 40 s).
 */
export function deadlineCheckIntervalMs(limits: ConnectionLimits): number {
  const shortest = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  return Math.min(1000, Math.max(10, Math.floor(shortest / 4)));
}

/**
 * Checks `limits`.
 *
 * @throws RangeError naming the first value that is not a positive integer, or a headers
 *   timeout above the request timeout.
 */
export function validateLimits(limits: ConnectionLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new RangeError(`server ${name} must be a positive integer, got ${value}`);
    }
  }
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new RangeError(
      `server headersTimeoutMs (${limits.headersTimeoutMs}) must not exceed requestTimeoutMs (${limits.requestTimeoutMs})`,
    );
  }
}
