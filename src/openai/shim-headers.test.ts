import { describe, expect, it } from "vitest";
import { ShimHeaders } from "./shim-headers.js";

/** Everything a reader of `Headers` can observe. */
function observe(h: Headers) {
  const each: string[] = [];
  h.forEach((value, key, parent) => {
    expect(parent).toBe(h);
    each.push(`${key}=${value}`);
  });
  return {
    entries: [...h],
    keys: [...h.keys()],
    values: [...h.values()],
    each,
    get: ["X-Gateway-Channel", "x-a", "Set-Cookie", "missing"].map((n) => h.get(n)),
    has: ["x-GATEWAY-channel", "x-a", "missing"].map((n) => h.has(n)),
    cookies: h.getSetCookie(),
  };
}

describe("ShimHeaders", () => {
  it("reads like Node's Headers after the same calls", () => {
    const script = (h: Headers) => {
      h.set("X-Gateway-Channel", "primary");
      h.append("x-b", "1");
      h.append("X-B", "2");
      h.set("x-a", "first");
      h.set("X-A", "second");
      h.append("set-cookie", "a=1");
      h.append("Set-Cookie", "b=2");
      h.append("x-gone", "soon");
      h.delete("X-Gone");
      return observe(h);
    };
    const real = script(new Headers());
    expect(script(new ShimHeaders())).toEqual(real);
    expect(real.keys).toEqual(["set-cookie", "set-cookie", "x-a", "x-b", "x-gateway-channel"]);
  });

  it("copies its headers onto a response's header record", () => {
    const h = new ShimHeaders();
    h.set("X-Gateway-Channel", "backup");
    const out: Record<string, string> = { "x-coze-conversation-id": "7" };
    h.copyTo(out);
    expect(out).toEqual({ "x-coze-conversation-id": "7", "x-gateway-channel": "backup" });
  });
});
