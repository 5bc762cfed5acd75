import { CozeError } from "../coze/errors.js";
import { wasNotSent } from "../coze/retry.js";
import { GatewayError } from "./errors.js";
import type { Target } from "./routing.js";

/**
 * Whether a failure on one channel may be retried on another (issue #5 "failover when one is
 * unavailable or rate-limited"): only when Coze certainly did not start the work — the token
 * could not be had, the request never left, Coze refused it for its rate, quota or balance
 * (429 / 4013, 4008, 4011…, coze-api.md §17.2: another channel is another app or account, with
 * limits and a balance of its own), or answered 503; or the channel's own cap on calls to Coze
 * refused it (`channel_busy`, issue 15). Never when the error names a run (Coze started it),
 * and never for a plan refusal (6003: a channel whose plan refuses `is_async` holds the run
 * itself, see `async-fallback.ts`). A 500 or a reset after sending may have started a run: it
 * is not retried. Each fallback channel is tried once, so a balance error on every channel ends
 * after one call per channel.
 */
export function isFailoverable(err: unknown): boolean {
  if (err instanceof GatewayError) return err.code === "channel_busy";
  if (!(err instanceof CozeError) || err.executeId !== undefined) return false;
  return (
    err.step === "token" ||
    wasNotSent(err) ||
    err.code === "rate_limited" ||
    err.code === "quota_exceeded" ||
    err.code === "balance_insufficient" ||
    err.status === 503
  );
}

/**
 * Runs `run` on the first target, then on each fallback while the failure is
 * {@link isFailoverable}. Returns the result and the target that produced it.
 */
export async function onFirstChannel<T>(
  target: Target,
  run: (t: Target) => Promise<T>,
): Promise<{ value: T; target: Target }> {
  // No array of candidates: most models have one channel (issue #6, the hot path).
  let t = target;
  for (let i = 0; ; i++) {
    try {
      return { value: await run(t), target: t };
    } catch (err) {
      const next = target.fallbacks[i];
      if (next === undefined || !isFailoverable(err)) throw err;
      t = next;
    }
  }
}

/**
 * Opens an upstream event stream with failover: a channel's stream counts as open once its
 * first event arrived; a failure before that moves on to the next channel. The returned
 * generator yields that first event and then the rest.
 */
export async function openOnFirstChannel<E>(
  target: Target,
  open: (t: Target) => AsyncGenerator<E, void>,
): Promise<{ events: AsyncGenerator<E, void>; target: Target }> {
  const { value, target: used } = await onFirstChannel(target, async (t) => {
    const events = open(t);
    try {
      return { events, first: await events.next() };
    } catch (err) {
      await events.return?.(undefined);
      throw err;
    }
  });
  async function* rest(): AsyncGenerator<E, void> {
    try {
      if (value.first.done) return;
      yield value.first.value;
      yield* value.events;
    } finally {
      await value.events.return?.(undefined);
    }
  }
  return { events: rest(), target: used };
}
