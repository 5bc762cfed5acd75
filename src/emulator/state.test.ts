import { describe, expect, it } from "vitest";
import { audiences, remember } from "./state.js";

describe("remember", () => {
  it("forgets the oldest entries beyond the limit", () => {
    const map = new Map<string, number>();
    for (const [i, key] of ["a", "b", "c", "d"].entries()) remember(map, key, i, 3);
    expect([...map.keys()]).toEqual(["b", "c", "d"]);
  });
});

describe("audiences", () => {
  it("accepts the own host and the Host header with and without port, plus extras", () => {
    expect([...audiences("127.0.0.1:8080", "localhost:8080", ["api.coze.cn"])].sort()).toEqual(
      ["127.0.0.1", "127.0.0.1:8080", "api.coze.cn", "localhost", "localhost:8080"].sort(),
    );
    expect(audiences("[::1]:9000", undefined, [])).toEqual(new Set(["[::1]:9000", "[::1]"]));
  });
});
