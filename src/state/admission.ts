import type { Admission, KeyGates, OpResult, StateOp } from "./state-store.js";

/** The batch of `gates`: the gates present, in the order of {@link KeyGates}. */
export function gateOps(gates: KeyGates): StateOp[] {
  const ops: StateOp[] = [];
  for (const op of [
    gates.requests,
    gates.tokensPerMinute,
    gates.tokensPerDay,
    gates.quota,
    gates.streams,
  ]) {
    if (op !== undefined) ops.push(op);
  }
  return ops;
}

/** The admission of `gates` from the results of their batch ({@link gateOps}). */
export function admissionOf(gates: KeyGates, results: readonly OpResult[]): Admission {
  let i = 0;
  const next = (op: StateOp | undefined) => (op === undefined ? undefined : results[i++]);
  return {
    allowed: results.every((r) => r.allowed),
    requests: next(gates.requests),
    tokensPerMinute: next(gates.tokensPerMinute),
    tokensPerDay: next(gates.tokensPerDay),
    quota: next(gates.quota),
    streams: next(gates.streams),
  };
}
