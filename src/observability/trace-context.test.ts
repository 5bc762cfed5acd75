import { describe, expect, it } from "vitest";
import { formatTraceParent, readTraceParent, readTraceState } from "./trace-context.js";

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
const parentId = "00f067aa0ba902b7";
const valid = `00-${traceId}-${parentId}-01`;

describe("readTraceParent", () => {
  it("reads a valid version 00 header, with its sampled flag", () => {
    expect(readTraceParent(valid, undefined)).toEqual({
      traceId,
      parentId,
      sampled: true,
      traceState: undefined,
    });
    expect(readTraceParent(`00-${traceId}-${parentId}-00`, undefined)?.sampled).toBe(false);
    // Flags other than sampled are not ours to pass on; bit 0 still counts.
    expect(readTraceParent(`00-${traceId}-${parentId}-09`, undefined)?.sampled).toBe(true);
    expect(readTraceParent(`00-${traceId}-${parentId}-02`, undefined)?.sampled).toBe(false);
  });

  it("accepts a later version with more fields after a dash, as the spec asks", () => {
    expect(
      readTraceParent(`01-${traceId}-${parentId}-01-what-comes-next`, undefined),
    ).toMatchObject({ traceId, parentId, sampled: true });
    expect(readTraceParent(`cc-${traceId}-${parentId}-00`, undefined)?.traceId).toBe(traceId);
  });

  it.each([
    ["version ff", `ff-${traceId}-${parentId}-01`],
    ["version 00 with more fields", `00-${traceId}-${parentId}-01-extra`],
    ["a later version with text glued on", `01-${traceId}-${parentId}-01extra`],
    ["uppercase digits", `00-${traceId.toUpperCase()}-${parentId}-01`],
    ["an all-zero trace id", `00-${"0".repeat(32)}-${parentId}-01`],
    ["an all-zero parent id", `00-${traceId}-${"0".repeat(16)}-01`],
    ["a short trace id", `00-${traceId.slice(1)}-${parentId}-01`],
    ["a long parent id", `00-${traceId}-${parentId}0-01`],
    ["one flag digit", `00-${traceId}-${parentId}-1`],
    ["non-hex flags", `00-${traceId}-${parentId}-0g`],
    ["a one-digit version", `0-${traceId}-${parentId}-01`],
    ["other separators", `00_${traceId}_${parentId}_01`],
    ["surrounding text", ` ${valid}`],
    ["an empty value", ""],
    ["two headers joined by Node (HTTP/1)", `${valid}, ${valid}`],
    ["garbage", "hello"],
  ])("ignores %s", (_, header) => {
    expect(readTraceParent(header, "congo=t61rcWkgMzE")).toBeUndefined();
  });

  it("ignores two headers handed as a list (HTTP/2), even identical ones", () => {
    expect(readTraceParent([valid, valid], undefined)).toBeUndefined();
    expect(readTraceParent(undefined, "congo=t61rcWkgMzE")).toBeUndefined();
  });

  it("keeps a valid tracestate and drops an invalid one without the traceparent", () => {
    expect(readTraceParent(valid, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")?.traceState).toBe(
      "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    );
    const bad = readTraceParent(valid, "Rojo=1");
    expect(bad?.traceId).toBe(traceId);
    expect(bad?.traceState).toBeUndefined();
  });
});

describe("readTraceState", () => {
  it("joins several headers and list members, dropping empty members and spaces", () => {
    expect(readTraceState(["rojo=1 , ", "congo=2"])).toBe("rojo=1,congo=2");
    expect(readTraceState("rojo=1,\t,congo=2")).toBe("rojo=1,congo=2");
    expect(readTraceState("tenant@vendor=x y")).toBe("tenant@vendor=x y");
  });

  it.each([
    ["a member without =", "rojo"],
    ["an empty key", "=1"],
    ["an uppercase key", "Rojo=1"],
    ["a key twice", "rojo=1,rojo=2"],
    ["a value holding =", "rojo=a=b"],
    ["a value with a control character", "rojo=a\u0001"],
    ["a value longer than 256", `rojo=${"a".repeat(257)}`],
    ["33 members", Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(",")],
    ["an oversized header", `rojo=${"a".repeat(20_000)}`],
  ])("drops %s", (_, header) => {
    expect(readTraceState(header)).toBeUndefined();
  });

  it("treats an absent or empty header as none", () => {
    expect(readTraceState(undefined)).toBeUndefined();
    expect(readTraceState(" , ")).toBeUndefined();
  });
});

describe("formatTraceParent", () => {
  it("writes version 00 with the sampled flag, and reads back", () => {
    const header = formatTraceParent(traceId, parentId, false);
    expect(header).toBe(`00-${traceId}-${parentId}-00`);
    expect(readTraceParent(header, undefined)).toMatchObject({ traceId, parentId, sampled: false });
  });
});
