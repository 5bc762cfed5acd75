import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createTenant, type HandleKind, inProcessTenant } from "./tenant.js";

const secret = randomBytes(32);
const keyA = Buffer.alloc(32, 1);
const keyB = Buffer.alloc(32, 2);
const a = createTenant(secret, keyA);
const b = createTenant(secret, keyB);
const kinds: HandleKind[] = ["conversation", "chat", "run", "interrupt"];
const cozeId = fc.stringMatching(/^[1-9]\d{0,18}$/);
const kind = fc.constantFrom(...kinds);

describe("handles: ids bound to the key they were handed to", () => {
  it("opens what it sealed, on any replica with the same server secret", () => {
    const replica = createTenant(Buffer.from(secret), Buffer.from(keyA));
    fc.assert(
      fc.property(kind, cozeId, (k, id) => {
        const handle = a.seal(k, id);
        expect(handle.startsWith(`${id}.`)).toBe(true);
        expect(a.open(k, handle)).toBe(id);
        expect(replica.open(k, handle)).toBe(id);
      }),
    );
  });

  it("opens an interrupt's two-part event id", () => {
    const event = "7404830425073352713/2769808280134765896";
    expect(a.open("interrupt", a.seal("interrupt", event))).toBe(event);
  });

  it("refuses another key's ids, another kind's, and ids made with another server secret", () => {
    const otherSecret = createTenant(randomBytes(32), keyA);
    fc.assert(
      fc.property(kind, kind, cozeId, (k, other, id) => {
        const handle = a.seal(k, id);
        expect(b.open(k, handle)).toBeUndefined();
        expect(otherSecret.open(k, handle)).toBeUndefined();
        if (other !== k) expect(a.open(other, handle)).toBeUndefined();
      }),
    );
  });

  it("refuses every truncation and every one-character change of a handle", () => {
    fc.assert(
      fc.property(kind, cozeId, fc.nat(), fc.nat(), (k, id, cut, at) => {
        const handle = a.seal(k, id);
        expect(a.open(k, handle.slice(0, cut % handle.length))).toBeUndefined();
        const i = at % handle.length;
        const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_./";
        for (const c of alphabet) {
          if (c === handle[i]) continue;
          const changed = handle.slice(0, i) + c + handle.slice(i + 1);
          expect(a.open(k, changed), changed).toBeUndefined();
        }
      }),
      { numRuns: 60 },
    );
  });

  it("refuses a tag moved onto another id (the tag covers the id)", () => {
    const tag = a.seal("chat", "7390000000000000001").split(".")[1];
    expect(a.open("chat", `7390000000000000002.${tag}`)).toBeUndefined();
  });

  it("refuses arbitrary text without throwing", () => {
    fc.assert(
      fc.property(kind, fc.string({ maxLength: 80 }), (k, text) => {
        expect(a.open(k, text)).toBeUndefined();
      }),
    );
  });

  it("takes a raw Coze id only from a key allowed raw ids", () => {
    const raw = createTenant(secret, keyA, { rawIds: true });
    expect(a.open("conversation", "7390000000000000001")).toBeUndefined();
    expect(raw.open("conversation", "7390000000000000001")).toBe("7390000000000000001");
    expect(raw.open("conversation", a.seal("conversation", "73"))).toBe("73");
    expect(raw.open("conversation", b.seal("conversation", "73"))).toBeUndefined();
    expect(raw.open("conversation", "73a")).toBeUndefined();
    expect(inProcessTenant.open("run", "7391")).toBe("7391");
  });

  it("rotating a key makes a new tenant: the old key's ids do not open for the new one", () => {
    const rotated = createTenant(secret, Buffer.alloc(32, 3));
    expect(rotated.open("run", a.seal("run", "7391"))).toBeUndefined();
  });
});

describe("what Coze sees", () => {
  it("derives per-key user ids and session names that do not repeat across keys", () => {
    expect(a.userId("")).toMatch(/^gw_[A-Za-z0-9_-]{22}$/);
    expect(a.userId("alice")).toMatch(/^gw_[A-Za-z0-9_-]{22}$/);
    expect(a.userId("alice")).toBe(createTenant(secret, keyA).userId("alice"));
    expect(a.userId("alice")).not.toBe(b.userId("alice"));
    expect(a.userId("alice")).not.toBe(a.userId(""));
    expect(a.sessionName).toMatch(/^gw_[A-Za-z0-9_-]{22}$/);
    expect(a.sessionName).not.toBe(b.sessionName);
    expect(a.sessionName).not.toBe(a.userId(""));
    expect(inProcessTenant.sessionName).toBeUndefined();
  });
});
