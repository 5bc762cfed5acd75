/** Aborts one upstream request; see {@link createUpstreamAbort}. */
export interface UpstreamAbort {
  /** What the request is sent with: undici and this folder read only `aborted`, `reason` and the `abort` listeners. */
  readonly signal: AbortSignal;
  /** Aborts the request with `reason`; later calls do nothing. */
  abort(reason: unknown): void;
}

type Listener = (event: { type: "abort" }) => void;

/**
 * An abort handle for an upstream request that must outlive its caller's signal (a chat turn
 * reads on after its caller left, to learn which chat to cancel). Its signal is not an
 * `AbortSignal`: it has the part of one that undici's `request` takes (an object with
 * `aborted`, `reason` and `addEventListener`/`removeEventListener` for `abort`, duck-typed as
 * undici documents) and that this folder's clock, token cache and errors read, nothing more:
 * never pass it to a Node API. On Node 20 an `AbortController` whose signal gets a listener
 * costs a call more than the rest of opening a chat turn (BENCHMARKS.md, issue 13's round).
 */
export function createUpstreamAbort(): UpstreamAbort {
  let listeners: Listener[] | undefined;
  const signal = {
    aborted: false,
    reason: undefined as unknown,
    addEventListener(type: string, listener: Listener) {
      if (type !== "abort" || signal.aborted) return;
      listeners ??= [];
      if (!listeners.includes(listener)) listeners.push(listener);
    },
    removeEventListener(type: string, listener: Listener) {
      if (type !== "abort" || listeners === undefined) return;
      const i = listeners.indexOf(listener);
      if (i >= 0) listeners.splice(i, 1);
    },
  };
  return {
    signal: signal as unknown as AbortSignal,
    abort(reason) {
      if (signal.aborted) return;
      signal.aborted = true;
      signal.reason = reason;
      const called = listeners;
      listeners = undefined;
      for (const listener of called ?? []) listener({ type: "abort" });
    },
  };
}
