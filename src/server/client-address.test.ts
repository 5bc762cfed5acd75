import { describe, expect, it } from "vitest";
import { createClientAddress } from "./client-address.js";
import type { NodeRequest } from "./http-response.js";

/** A request from `peer` with these `X-Forwarded-For` values (Node joins repeats with ", "). */
function from(peer: string, forwarded?: string): NodeRequest {
  return {
    socket: { remoteAddress: peer },
    headers: forwarded === undefined ? {} : { "x-forwarded-for": forwarded },
  } as unknown as NodeRequest;
}

describe("the client address", () => {
  const behindProxies = createClientAddress(["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"]);

  it("is the peer when no proxy is trusted, whatever the header says", () => {
    const none = createClientAddress([]);
    expect(none(from("198.51.100.20", "203.0.113.9"))).toBe("198.51.100.20");
    expect(none(from("::ffff:198.51.100.20"))).toBe("198.51.100.20");
  });

  it("ignores a forged header from a peer that is not a trusted proxy", () => {
    expect(behindProxies(from("198.51.100.20", "10.1.1.1, 203.0.113.9"))).toBe("198.51.100.20");
    expect(behindProxies(from("::ffff:198.51.100.20", "203.0.113.9"))).toBe("198.51.100.20");
  });

  it("takes the right-most address that is not a trusted proxy", () => {
    // The client wrote "1.2.3.4" itself; its own proxy appended what it saw: 203.0.113.9.
    expect(behindProxies(from("10.0.0.2", "1.2.3.4, 203.0.113.9, 10.0.0.7"))).toBe("203.0.113.9");
    expect(behindProxies(from("::ffff:127.0.0.1", "203.0.113.9"))).toBe("203.0.113.9");
    expect(behindProxies(from("fd00::1", "2001:db8::5, fd00::9"))).toBe("2001:db8::5");
  });

  it("reads addresses written with ports, and IPv4 mapped into IPv6", () => {
    expect(behindProxies(from("10.0.0.2", "203.0.113.9:5123"))).toBe("203.0.113.9");
    expect(behindProxies(from("10.0.0.2", "[2001:db8::5]:443"))).toBe("2001:db8::5");
    expect(behindProxies(from("10.0.0.2", "::ffff:203.0.113.9"))).toBe("203.0.113.9");
  });

  it("stops at an entry that is not an address: the proxy that wrote it is the best known", () => {
    expect(behindProxies(from("10.0.0.2", "203.0.113.9, unknown, 10.0.0.7"))).toBe("10.0.0.7");
    expect(behindProxies(from("10.0.0.2", "garbage"))).toBe("10.0.0.2");
    expect(behindProxies(from("10.0.0.2", ""))).toBe("10.0.0.2");
  });

  it("gives the left-most hop of a chain of trusted proxies only", () => {
    expect(behindProxies(from("10.0.0.2", "10.9.9.9, 10.0.0.7"))).toBe("10.9.9.9");
  });

  it("reads at most 32 hops of an oversized header", () => {
    const hops = Array.from({ length: 5000 }, () => "10.0.0.1").join(", ");
    expect(behindProxies(from("10.0.0.2", `203.0.113.9, ${hops}`))).toBe("10.0.0.1");
  });

  it("refuses a block that is not address/prefix", () => {
    expect(() => createClientAddress(["10.0.0.0"])).toThrow(TypeError);
    expect(() => createClientAddress(["proxy/8"])).toThrow(TypeError);
  });
});
