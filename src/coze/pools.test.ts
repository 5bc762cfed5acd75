import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Pool } from "undici";
import { describe, expect, it } from "vitest";
import { createPools } from "./pools.js";

describe("pools", () => {
  it("shares one pool per origin and connect timeout", async () => {
    const pools = createPools({ connectMs: 1_000 });
    try {
      const a = pools.get("https://api.coze.cn/v3/chat");
      expect(pools.get(new URL("https://api.coze.cn/v1/workflow/run"))).toBe(a);
      expect(pools.get("https://api.coze.cn", { connectMs: 1_000 })).toBe(a);
      expect(pools.get("https://api.coze.cn", { connectMs: 250 })).not.toBe(a);
      expect(pools.get("https://api.coze.com")).not.toBe(a);
    } finally {
      await pools.destroy();
    }
  });

  it("refuses URLs that are not http(s)", async () => {
    const pools = createPools();
    expect(() => pools.get("ftp://api.coze.cn")).toThrow(TypeError);
    await pools.close();
  });

  it("retains the pools it is told to, and closes the others once their requests are done", async () => {
    // A server that answers only when told to: a request under way while its pool closes.
    let answer: (() => void) | undefined;
    const server = createServer((_req, res) => {
      answer = () => res.end("done");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const pools = createPools();
    try {
      const kept = pools.get("https://api.coze.cn");
      const closing = pools.get(origin);
      const pending = closing.request({ origin, path: "/", method: "GET" });
      for (let turns = 0; answer === undefined && turns < 10_000; turns++) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (answer === undefined) throw new Error("the request never reached the server");
      const retained = pools.retain([{ url: "https://api.coze.cn/v3/chat" }]);
      expect(pools.get("https://api.coze.cn")).toBe(kept);
      // The pool is gone for new callers, but its request under way completes.
      expect(pools.get(origin)).not.toBe(closing);
      answer();
      expect(await (await pending).body.text()).toBe("done");
      await retained;
      expect((closing as Pool).closed).toBe(true);
      expect((kept as Pool).closed).toBe(false);
    } finally {
      await pools.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
