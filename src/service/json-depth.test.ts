import { describe, expect, it } from "vitest";
import { GatewayError } from "./errors.js";
import { checkJsonDepth, maxJsonDepth, nestedDeeperThan } from "./json-depth.js";

/** Objects and arrays alternating, `levels` deep in all. */
function nested(levels: number): unknown {
  let value: unknown = "leaf";
  for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { a: value };
  return value;
}

describe("nestedDeeperThan", () => {
  it("counts the outermost object or array as level 1, and scalars as no level", () => {
    expect(nestedDeeperThan("text", 0)).toBe(false);
    expect(nestedDeeperThan({}, 0)).toBe(true);
    expect(nestedDeeperThan({ a: 1, b: [] }, 1)).toBe(true);
    expect(nestedDeeperThan({ a: 1, b: [] }, 2)).toBe(false);
    expect(nestedDeeperThan(nested(32), 32)).toBe(false);
    expect(nestedDeeperThan(nested(33), 32)).toBe(true);
  });

  it("checks a value a million levels deep without overflowing the stack", () => {
    expect(nestedDeeperThan(nested(1_000_000), maxJsonDepth)).toBe(true);
  });
});

describe("checkJsonDepth", () => {
  it("refuses a value nested too deep with invalid_argument naming the field", () => {
    const err = (() => {
      try {
        checkJsonDepth("parameters", { a: nested(maxJsonDepth) });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ code: "invalid_argument", field: "parameters" });
    expect((err as Error).message).toBe(
      "parameters: nests objects and arrays more than 32 levels deep",
    );
    expect(() => checkJsonDepth("parameters", nested(maxJsonDepth))).not.toThrow();
    expect(() => checkJsonDepth("parameters", undefined)).not.toThrow();
  });
});
