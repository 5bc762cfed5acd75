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
});
