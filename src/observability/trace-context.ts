// W3C Trace Context (https://www.w3.org/TR/trace-context/): reading a caller's `traceparent` and
// `tracestate`, writing ours. Strict where the spec is: anything malformed is ignored, never an
// error, and the request starts a trace of its own.

/** A caller's trace context, validated. */
export interface TraceParent {
  /** 32 lowercase hexadecimal digits, not all zeros. */
  readonly traceId: string;
  /** The caller's span: 16 lowercase hexadecimal digits, not all zeros. */
  readonly parentId: string;
  /** The `sampled` flag (bit 0 of trace-flags). The other flags are not propagated. */
  readonly sampled: boolean;
  /** The caller's `tracestate`, validated and rejoined; `undefined` when absent or invalid. */
  readonly traceState: string | undefined;
}

// version "-" trace-id "-" parent-id "-" trace-flags, lowercase only (§3.2.2). A version above 00
// may add fields after a dash; version 00 is exactly 55 characters.
const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const zeroTraceId = "0".repeat(32);
const zeroSpanId = "0".repeat(16);

/**
 * The caller's trace context from its `traceparent` and `tracestate` headers (as Node parsed
 * them), or `undefined` when `traceparent` is absent, repeated (two headers: which one a proxy
 * meant, nobody knows) or malformed: a version other than 00 that breaks the spec's rules for
 * later versions, version `ff`, uppercase or missing digits, an all-zero trace or parent id. A
 * malformed `tracestate` is dropped and the `traceparent` kept (§3.3.1.1).
 */
export function readTraceParent(
  traceparent: string | string[] | undefined,
  tracestate: string | string[] | undefined,
): TraceParent | undefined {
  // Node joins a repeated unknown header with ", " (HTTP/1) or hands an array (HTTP/2): either
  // way the value no longer matches.
  if (typeof traceparent !== "string") return undefined;
  const m = traceparentPattern.exec(traceparent);
  if (m === null) return undefined;
  const [, version, traceId, parentId, flags, rest] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (traceId === zeroTraceId || parentId === zeroSpanId) return undefined;
  return {
    traceId,
    parentId,
    sampled: (Number.parseInt(flags, 16) & 1) === 1,
    traceState: readTraceState(tracestate),
  };
}

/** The `traceparent` header (version 00) of span `spanId` in trace `traceId`. */
export function formatTraceParent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? "01" : "00"}`;
}

// §3.3.1.3: a simple key, or tenant@system; a value of printable ASCII without "," and "=",
// not ending in a space.
const memberKey =
  /^(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})$/;
const memberValue = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
/** At most 32 members (§3.3.1.1); and no more text than 32 members of 512 characters could be. */
const maxMembers = 32;
const maxTraceStateChars = 32 * 512;

/**
 * A `tracestate` (several headers are one list, §3.3.1.1) as `key=value` members joined by `,`,
 * or `undefined` when absent, empty or invalid: a member that is not `key=value`, a key twice,
 * more than 32 members.
 */
export function readTraceState(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = typeof value === "string" ? value : value.join(",");
  if (text.length > maxTraceStateChars) return undefined;
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of text.split(",")) {
    const member = raw.trim();
    if (member === "") continue;
    const eq = member.indexOf("=");
    if (eq <= 0) return undefined;
    const key = member.slice(0, eq);
    if (!memberKey.test(key) || !memberValue.test(member.slice(eq + 1)) || keys.has(key)) {
      return undefined;
    }
    keys.add(key);
    members.push(member);
    if (members.length > maxMembers) return undefined;
  }
  return members.length === 0 ? undefined : members.join(",");
}
