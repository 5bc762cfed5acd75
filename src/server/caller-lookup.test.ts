import { describe, expect, it } from "vitest";
import { inProcessTenant } from "../service/tenant.js";
import type { Caller } from "./caller.js";
import { createCallerLookup } from "./caller-lookup.js";

// A connection's accepted key is remembered (issue #6), but only while its caller is current:
// after a reload removed or rotated keys it is checked again (issue 15).
const caller = (name: string): Caller => ({ name, models: undefined, tenant: inProcessTenant });

describe("createCallerLookup", () => {
  it("checks a connection's key once while its caller stays current", () => {
    const alice = caller("alice");
    let checks = 0;
    const lookup = createCallerLookup((key) => {
      checks++;
      return key === "alice-key" ? alice : undefined;
    });
    const connection = {};
    expect(lookup(connection, "Bearer alice-key")).toBe(alice);
    expect(lookup(connection, "Bearer alice-key")).toBe(alice);
    expect(checks).toBe(1);
    // Another connection, or another header on this one, is checked on its own.
    expect(lookup({}, "Bearer alice-key")).toBe(alice);
    expect(lookup(connection, "Bearer other-key")).toBeUndefined();
    expect(checks).toBe(3);
  });

  it("checks the key again once its caller is no longer current, and refuses a removed key", () => {
    const before = caller("alice");
    const after = caller("alice");
    let keys = new Map([["alice-key", before]]);
    const lookup = createCallerLookup(
      (key) => keys.get(key),
      (c) => [...keys.values()].includes(c),
    );
    const connection = {};
    expect(lookup(connection, "Bearer alice-key")).toBe(before);
    // A reload: the same key value under the new config gets the new config's caller.
    keys = new Map([["alice-key", after]]);
    expect(lookup(connection, "Bearer alice-key")).toBe(after);
    // A reload that removes the key: refused on the very connection that used it.
    keys = new Map();
    expect(lookup(connection, "Bearer alice-key")).toBeUndefined();
  });
});
