import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Pool } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { createUpstreamAbort } from "./upstream-abort.js";

describe("createUpstreamAbort", () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  it("aborts a real undici request with its reason, and only once", async () => {
    const server = createServer(() => {}); // never answers
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    closers.push(async () => {
      await pool.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });
    const upstream = createUpstreamAbort();
    const reason = new Error("caller left");
    const request = pool.request({ path: "/", method: "GET", signal: upstream.signal });
    upstream.abort(reason);
    upstream.abort(new Error("second"));
    await expect(request).rejects.toBe(reason);
    expect(upstream.signal.aborted).toBe(true);
    expect(upstream.signal.reason).toBe(reason);
  });

  it("calls each abort listener once, not those removed, and none added after the abort", () => {
    const upstream = createUpstreamAbort();
    const calls: string[] = [];
    const a = () => calls.push("a");
    const b = () => calls.push("b");
    upstream.signal.addEventListener("abort", a);
    upstream.signal.addEventListener("abort", a);
    upstream.signal.addEventListener("abort", b);
    upstream.signal.removeEventListener("abort", b);
    upstream.abort("gone");
    upstream.signal.addEventListener("abort", b);
    upstream.abort("again");
    expect(calls).toEqual(["a"]);
  });
});
