/** Exponential backoff settings, in milliseconds. */
export interface BackoffOptions {
  /** Delay before the first retry. Default 500. */
  initialMs?: number;
  /** Upper bound of any delay. Default 30 000. */
  maxMs?: number;
  /**
   * Fraction of each delay that is randomised away, from 0 (none) to 1 (full jitter). Default
   * 0.2: a delay of 1 000 becomes a value in (800, 1 000].
   */
  jitter?: number;
}

/**
 * The delay before retry number `attempt` (0 for the first retry): `initialMs * 2^attempt`,
 * capped at `maxMs`, minus up to `jitter` of itself. `random` returns a value in [0, 1); pass a
 * fixed function in tests.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initial = options.initialMs ?? 500;
  const max = options.maxMs ?? 30_000;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.2));
  const base = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - jitter * random()));
}
