import type { Metric, Registry } from "prom-client";

/**
 * A counter and a histogram for the metrics every request updates, kept in plain numbers per
 * label set and handed to prom-client's registry as metric objects read at scrape time. The
 * exposition (names, `# TYPE`, label order with `le` first, `+Inf`) is prom-client's own; only
 * the hot path differs: prom-client validates and hashes the label object on every `inc` and
 * `observe`, even on a bound child, and a request updates seven series (BENCHMARKS.md: above
 * the bench's A/A spread). Label values must come from bounded vocabularies; a label set is
 * created on first use and kept.
 */
export interface HotCounter {
  /** The counter of one label set, values in `labelNames` order. */
  series(...labels: string[]): { inc(by?: number): void };
}

/** See {@link HotCounter}. */
export interface HotHistogram {
  series(...labels: string[]): { observe(value: number): void };
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/**
 * Label sets by their values, one map level per label: no key string per update. The last label
 * set asked for is answered without a lookup: traffic mostly repeats the same one.
 */
class SeriesTable<T> {
  readonly #root = new Map<string, unknown>();
  readonly all: { labels: Record<string, string>; series: T }[] = [];
  #lastValues: readonly string[] = [];
  #last: T | undefined;

  constructor(
    private readonly labelNames: readonly string[],
    private readonly make: () => T,
  ) {}

  get(values: readonly string[]): T {
    if (values.length !== this.labelNames.length) {
      throw new TypeError(`expected ${this.labelNames.length} label values`);
    }
    const last = this.#last;
    if (last !== undefined && sameValues(values, this.#lastValues)) return last;
    const series = this.#lookup(values);
    this.#lastValues = values;
    this.#last = series;
    return series;
  }

  #lookup(values: readonly string[]): T {
    let level = this.#root;
    const last = values.length - 1;
    for (let i = 0; i < last; i++) {
      const value = values[i] as string;
      let next = level.get(value) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(value, next);
      }
      level = next;
    }
    const key = values[last] as string;
    let series = level.get(key) as T | undefined;
    if (series === undefined) {
      series = this.make();
      level.set(key, series);
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => {
        labels[name] = values[i] as string;
      });
      this.all.push({ labels, series });
    }
    return series;
  }
}

function sameValues(a: readonly string[], b: readonly string[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Registers a metric read at scrape time: the registry reads a metric through `name` and `get()`,
 * the protocol its own classes follow.
 */
function register(
  registry: Registry,
  name: string,
  help: string,
  type: "counter" | "histogram",
  values: () => MetricValue[],
): void {
  const get = () => ({ name, help, type, aggregator: "sum", values: values() });
  registry.registerMetric({ name, help, type, aggregator: "sum", get } as unknown as Metric);
}

/** Creates a {@link HotCounter} registered in `registry`. */
export function hotCounter(
  registry: Registry,
  options: { name: string; help: string; labelNames: readonly string[] },
): HotCounter {
  const table = new SeriesTable(options.labelNames, () => {
    const c = {
      value: 0,
      inc(by = 1) {
        c.value += by;
      },
    };
    return c;
  });
  register(registry, options.name, options.help, "counter", () =>
    table.all.map(({ labels, series }) => ({ labels, value: series.value })),
  );
  return { series: (...labels) => table.get(labels) };
}

/**
 * Creates a {@link HotHistogram} with the given upper bounds, registered in `registry`. With
 * `counter`, also a counter of the observations per label set under that name (registered
 * first), read from the histogram's counts: a request counted once, not once more beside its
 * latency.
 */
export function hotHistogram(
  registry: Registry,
  options: {
    name: string;
    help: string;
    labelNames: readonly string[];
    buckets: number[];
    counter?: { name: string; help: string };
  },
): HotHistogram {
  const bounds = [...options.buckets].sort((a, b) => a - b);
  const table = new SeriesTable(options.labelNames, () => {
    const h = {
      // Per bucket, not cumulative: the scrape adds them up.
      counts: new Float64Array(bounds.length),
      sum: 0,
      count: 0,
      observe(value: number) {
        if (!Number.isFinite(value)) throw new TypeError(`not a finite number: ${value}`);
        h.sum += value;
        h.count++;
        for (let i = 0; i < bounds.length; i++) {
          if (value <= (bounds[i] as number)) {
            (h.counts[i] as number)++;
            break;
          }
        }
      },
    };
    return h;
  });
  const { name, counter } = options;
  if (counter !== undefined) {
    register(registry, counter.name, counter.help, "counter", () =>
      table.all.map(({ labels, series }) => ({ labels, value: series.count })),
    );
  }
  register(registry, name, options.help, "histogram", () => {
    const values: MetricValue[] = [];
    for (const { labels, series } of table.all) {
      let cumulative = 0;
      bounds.forEach((le, i) => {
        cumulative += series.counts[i] as number;
        values.push({
          labels: { le, ...labels },
          value: cumulative,
          metricName: `${name}_bucket`,
        });
      });
      values.push({
        labels: { le: "+Inf", ...labels },
        value: series.count,
        metricName: `${name}_bucket`,
      });
      values.push({ labels, value: series.sum, metricName: `${name}_sum` });
      values.push({ labels, value: series.count, metricName: `${name}_count` });
    }
    return values;
  });
  return { series: (...labels) => table.get(labels) };
}
