/**
 * The response headers of an in-process service call: what a service sets for its caller (the
 * `x-gateway-channel` that served it), which the REST shim then writes on its HTTP response. A
 * map behind the `Headers` interface: names are compared and listed in lower case and values
 * joined by `, `, as `Headers` does, but without its WHATWG checks and their objects on every
 * call (issue #6 profile: making Node's `Headers` and setting one header cost each request about
 * 3 µs). Names and values are checked by Node when the shim writes them on the response.
 */
export class ShimHeaders implements Headers {
  readonly #values = new Map<string, string>();
  readonly #cookies: string[] = [];

  append(name: string, value: string): void {
    const key = name.toLowerCase();
    if (key === "set-cookie") this.#cookies.push(value);
    const prev = this.#values.get(key);
    this.#values.set(key, prev === undefined ? value : `${prev}, ${value}`);
  }

  delete(name: string): void {
    const key = name.toLowerCase();
    if (key === "set-cookie") this.#cookies.length = 0;
    this.#values.delete(key);
  }

  get(name: string): string | null {
    return this.#values.get(name.toLowerCase()) ?? null;
  }

  has(name: string): boolean {
    return this.#values.has(name.toLowerCase());
  }

  set(name: string, value: string): void {
    const key = name.toLowerCase();
    if (key === "set-cookie") this.#cookies.splice(0, this.#cookies.length, value);
    this.#values.set(key, value);
  }

  getSetCookie(): string[] {
    return [...this.#cookies];
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown) {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }

  /** The headers sorted by name, each `set-cookie` on its own, as `Headers` lists them. */
  *entries(): IterableIterator<[string, string]> {
    const sorted = [...this.#values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const entry of sorted) {
      if (entry[0] === "set-cookie") {
        for (const cookie of this.#cookies) yield ["set-cookie", cookie];
      } else yield entry;
    }
  }

  *keys(): IterableIterator<string> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /** Copies the headers onto `target`, in one pass and without sorting (the shim's use). */
  copyTo(target: Record<string, string>): void {
    for (const [key, value] of this.#values) target[key] = value;
  }
}
