import type { ChannelLimitsConfig } from "../config/index.js";
import type { Clock } from "../coze/clock.js";
import { GatewayError } from "./errors.js";

/** Why a channel refused a call: its queue was full, or no slot freed in time. */
export type GateRefusal = "queue_full" | "queue_timeout";

/**
 * A channel's cap on calls to Coze in flight at once (issue 15, "to stay under the Coze app's
 * own limits"). Calls over it wait in a bounded queue, first come first served.
 */
export interface ChannelGate {
  /**
   * Takes a slot, waiting for one when all are taken; resolves with the function that gives it
   * back (call it once).
   * @throws GatewayError `channel_busy` when the queue is full, or no slot freed within the
   *   queue timeout; `signal`'s reason when it aborts while waiting (the call's deadline, the
   *   client gone, shutdown).
   */
  enter(signal: AbortSignal): Promise<() => void>;
  /** Calls holding a slot now. */
  readonly active: number;
  /** Calls waiting now. */
  readonly waiting: number;
}

interface Waiter {
  grant(release: () => void): void;
}

/** Creates the gate of channel `channel` from its `limits`. */
export function createChannelGate(
  channel: string,
  limits: ChannelLimitsConfig & { maxConcurrent: number },
  clock: Clock,
  onRefused?: (reason: GateRefusal) => void,
): ChannelGate {
  const { maxConcurrent, queue, queueTimeoutMs } = limits;
  let active = 0;
  const waiters: Waiter[] = [];

  function release(): void {
    const next = waiters.shift();
    // The slot goes to the first waiter as it is: `active` does not change.
    if (next !== undefined) next.grant(once());
    else active--;
  }
  function once(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      release();
    };
  }
  function refuse(reason: GateRefusal, message: string): GatewayError {
    onRefused?.(reason);
    return new GatewayError("channel_busy", message, {
      retryAfterMs: 1000,
      limit: { kind: "channel", headers: {} },
    });
  }

  return {
    get active() {
      return active;
    },
    get waiting() {
      return waiters.length;
    },
    enter(signal) {
      if (signal.aborted) return Promise.reject(signal.reason);
      if (active < maxConcurrent) {
        active++;
        return Promise.resolve(once());
      }
      if (waiters.length >= queue) {
        return Promise.reject(
          refuse(
            "queue_full",
            `channel ${channel} is busy: ${maxConcurrent} calls to Coze in flight and ${queue} waiting; try again shortly`,
          ),
        );
      }
      return new Promise((resolve, reject) => {
        const timer = new AbortController();
        let settled = false;
        const leave = () => {
          settled = true;
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          timer.abort();
          signal.removeEventListener("abort", onAbort);
        };
        const waiter: Waiter = {
          grant(give) {
            leave();
            resolve(give);
          },
        };
        const onAbort = () => {
          leave();
          reject(signal.reason);
        };
        waiters.push(waiter);
        signal.addEventListener("abort", onAbort, { once: true });
        clock.sleep(queueTimeoutMs, timer.signal).then(
          () => {
            if (settled) return;
            leave();
            reject(
              refuse(
                "queue_timeout",
                `channel ${channel} is busy: no call to Coze ended within ${queueTimeoutMs} ms; try again shortly`,
              ),
            );
          },
          () => {},
        );
      });
    },
  };
}

/** Runs `call` holding a slot of `gate` (none to take without a gate). */
export async function gated<T>(
  gate: ChannelGate | undefined,
  signal: AbortSignal,
  call: () => Promise<T>,
): Promise<T> {
  if (gate === undefined) return call();
  const release = await gate.enter(signal);
  try {
    return await call();
  } finally {
    release();
  }
}

/**
 * `open`'s events, read while holding a slot of `gate`: taken when the first event is asked
 * for, given back when the generator ends, however it ends.
 */
export async function* gatedEvents<E>(
  gate: ChannelGate | undefined,
  signal: AbortSignal,
  open: () => AsyncGenerator<E, void>,
): AsyncGenerator<E, void> {
  if (gate === undefined) {
    yield* open();
    return;
  }
  const release = await gate.enter(signal);
  try {
    yield* open();
  } finally {
    release();
  }
}

/**
 * A stream `open` opens while holding a slot of `gate`: taken before it is opened, given back
 * when the stream fails to open or its events end, however they end (read to the end, thrown,
 * or returned, even before the first read). For a stream that outlives its caller (a held run).
 */
export async function gatedOpen<E>(
  gate: ChannelGate | undefined,
  signal: AbortSignal,
  open: () => Promise<AsyncGenerator<E, void>>,
): Promise<AsyncGenerator<E, void>> {
  if (gate === undefined) return open();
  const release = await gate.enter(signal);
  let events: AsyncGenerator<E, void>;
  try {
    events = await open();
  } catch (err) {
    release();
    throw err;
  }
  async function* read(): AsyncGenerator<E, void> {
    try {
      yield* events;
    } finally {
      release();
    }
  }
  const reading = read();
  const returnOf = reading.return.bind(reading);
  reading.return = async (value) => {
    try {
      // A generator returned before its first read skips its body: close the stream here.
      await events.return(value);
      return await returnOf(value);
    } finally {
      release();
    }
  };
  return reading;
}
