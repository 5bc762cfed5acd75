import { describe, expect, it } from "vitest";
import { parseBearerToken } from "./bearer.js";

describe("parseBearerToken", () => {
  it("returns the token of a Bearer header, whatever the scheme's case", () => {
    expect(parseBearerToken("Bearer sk-abc")).toBe("sk-abc");
    expect(parseBearerToken("bearer sk-abc")).toBe("sk-abc");
    expect(parseBearerToken("  BEARER   sk-abc  ")).toBe("sk-abc");
  });

  it("returns undefined for a missing header, another scheme or an empty token", () => {
    expect(parseBearerToken(undefined)).toBeUndefined();
    expect(parseBearerToken(null)).toBeUndefined();
    expect(parseBearerToken("")).toBeUndefined();
    expect(parseBearerToken("Bearer")).toBeUndefined();
    expect(parseBearerToken("Bearer ")).toBeUndefined();
    expect(parseBearerToken("Basic c2stYWJj")).toBeUndefined();
    expect(parseBearerToken("sk-abc")).toBeUndefined();
    expect(parseBearerToken("Bearer a b")).toBeUndefined();
  });
});
