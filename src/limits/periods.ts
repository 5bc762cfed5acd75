/** A quota's period: a UTC calendar day or month. */
export type QuotaPeriod = "day" | "month";

/** One period: its id (`2025-01-31`, `2025-01`) and when it ends, in ms since the epoch. */
export interface Period {
  readonly id: string;
  readonly endMs: number;
}

/**
 * The UTC day or month that holds `nowMs`. Quotas reset at its end: midnight UTC, or midnight
 * UTC on the first of the next month.
 */
export function periodOf(per: QuotaPeriod, nowMs: number): Period {
  const d = new Date(nowMs);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const month = `${String(y).padStart(4, "0")}-${String(m + 1).padStart(2, "0")}`;
  if (per === "month") return { id: month, endMs: Date.UTC(y, m + 1, 1) };
  const day = d.getUTCDate();
  return { id: `${month}-${String(day).padStart(2, "0")}`, endMs: Date.UTC(y, m, day + 1) };
}
