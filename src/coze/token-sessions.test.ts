// The bounded per-session token caches (coze-api.md §12.2: one token per `session_name`),
// against the emulator's token endpoint, which counts the tokens it issues per session.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createManualClock, type ManualClock } from "../../test/support/manual-clock.js";
import { parsePrivateKey } from "../config/private-key.js";
import { type Emulator, type GeneratedApp, startEmulator } from "../emulator/index.js";
import { createPools, type Pools } from "./pools.js";
import {
  type CozeCredential,
  createTokenCache,
  type TokenCache,
  type TokenEvent,
} from "./token-cache.js";

const minute = 60_000;
let clock: ManualClock;
let emulator: Emulator;
let app: GeneratedApp;
let pools: Pools;
let events: TokenEvent[];
let tokens: TokenCache;

beforeEach(async () => {
  clock = createManualClock(Date.parse("2026-03-01T10:00:00Z"));
  emulator = await startEmulator({ now: () => clock.now() });
  app = await emulator.createApp();
  pools = createPools();
  events = [];
  tokens = createTokenCache({ pools, clock, onEvent: (e) => events.push(e) });
});

afterEach(async () => {
  await pools.destroy();
  await emulator.close();
});

function credential(extra: Partial<CozeCredential> = {}): CozeCredential {
  return {
    baseUrl: emulator.url,
    clientId: app.clientId,
    publicKeyId: app.publicKeyId,
    privateKey: parsePrivateKey(app.privateKeyPem),
    ...extra,
  };
}

const issued = (session: string) => emulator.stats().tokensBySession[session] ?? 0;

describe("session token caches", () => {
  it("gives each session its own token, one fetch for 100 concurrent callers", async () => {
    const sessions = tokens.sessions(credential(), { maxSessions: 10, attach: (s) => s });
    const alice = await Promise.all(
      Array.from({ length: 100 }, () => sessions.get("alice").getToken()),
    );
    const bob = await sessions.get("bob").getToken();
    expect(new Set(alice).size).toBe(1);
    expect(bob).not.toBe(alice[0]);
    expect([issued("alice"), issued("bob"), emulator.stats().tokenRequests]).toEqual([1, 1, 2]);
    expect(sessions.get("alice")).toBe(sessions.get("alice"));
    expect(await sessions.get("alice").getToken()).toBe(alice[0]);
    expect(tokens.stats()).toMatchObject({ tokensFetched: 2, tokensCached: 2, tokensEvicted: 0 });
  });

  it("holds at most maxSessions, dropping the least recently used, which fetches again", async () => {
    const sessions = tokens.sessions(credential(), { maxSessions: 3, attach: (s) => s });
    for (const user of ["u1", "u2", "u3", "u4", "u5"]) {
      await sessions.get(user).getToken();
    }
    expect(sessions.size).toBe(3);
    expect(tokens.stats()).toMatchObject({ tokensFetched: 5, tokensCached: 3, tokensEvicted: 2 });
    const evicted = events.filter((e) => e.type === "evicted").map((e) => JSON.parse(e.key)[3]);
    expect(evicted).toEqual(["u1", "u2"]);

    // Using u3 makes it the most recent: u1 coming back drops u4, not u3.
    await sessions.get("u3").getToken();
    await sessions.get("u1").getToken();
    expect(issued("u3")).toBe(1);
    expect(issued("u1")).toBe(2);
    expect(tokens.stats()).toMatchObject({ tokensFetched: 6, tokensCached: 3, tokensEvicted: 3 });
    await sessions.get("u5").getToken();
    await sessions.get("u3").getToken();
    expect([issued("u5"), issued("u3"), issued("u4")]).toEqual([1, 1, 1]);
    expect(emulator.stats().tokensIssued).toBe(6);
  });

  it("refreshes a session's token ahead of expiry once, serving the old one meanwhile", async () => {
    const sessions = tokens.sessions(credential({ durationSeconds: 3600 }), {
      maxSessions: 2,
      attach: (s) => s,
    });
    const first = await sessions.get("alice").getToken();
    await clock.advance(56 * minute); // past the 5-minute refresh point
    const during = await Promise.all(
      Array.from({ length: 20 }, () => sessions.get("alice").getToken()),
    );
    expect(new Set(during)).toEqual(new Set([first]));
    // The refresh is real I/O to the emulator: wait for its event, a bounded number of turns.
    for (let i = 0; i < 10_000 && !events.some((e) => e.type === "refreshed"); i++) {
      await new Promise((r) => setImmediate(r));
    }
    expect(issued("alice")).toBe(2);
    expect(await sessions.get("alice").getToken()).not.toBe(first);
    expect(tokens.stats().backgroundRefreshes).toBe(1);
  });

  it("signs each session's JWT with session_name and keeps the credential's account", async () => {
    const sessions = tokens.sessions(credential({ sessionName: "ignored" }), {
      maxSessions: 2,
      attach: (s) => s,
    });
    await sessions.get("carol").getToken();
    expect(issued("carol")).toBe(1);
    expect(issued("ignored")).toBe(0);
    const key = JSON.parse(sessions.get("carol").key) as unknown[];
    expect(key[3]).toBe("carol");
    const account = tokens.sessions(credential({ accountId: "7300000000000000001" }), {
      maxSessions: 2,
      attach: (s) => s,
    });
    expect(JSON.parse(account.get("carol").key)[4]).toBe("7300000000000000001");
  });

  it("forgets every session on clear(); the next call fetches again", async () => {
    const sessions = tokens.sessions(credential(), { maxSessions: 2, attach: (s) => s });
    await sessions.get("alice").getToken();
    tokens.clear();
    expect(sessions.size).toBe(0);
    expect(tokens.stats().tokensCached).toBe(0);
    await sessions.get("alice").getToken();
    expect(issued("alice")).toBe(2);
  });

  it("drops the sessions of the group holding the most, so one flooding group keeps its hands off the others'", async () => {
    const sessions = tokens.sessions(credential(), { maxSessions: 4, attach: (s) => s });
    await sessions.get("b1", "key-b").getToken();
    await sessions.get("b2", "key-b").getToken();
    for (let i = 0; i < 10; i++) await sessions.get(`a${i}`, "key-a").getToken();
    expect(sessions.size).toBe(4);
    // key-b's two sessions stay: key-a dropped its own oldest each time.
    const evicted = events.filter((e) => e.type === "evicted").map((e) => JSON.parse(e.key)[3]);
    expect(evicted).toEqual(["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"]);
    await sessions.get("b1", "key-b").getToken();
    await sessions.get("b2", "key-b").getToken();
    expect([issued("b1"), issued("b2")]).toEqual([1, 1]);
    // Two groups of two: a new session of a third group drops the longest unused of them.
    await sessions.get("c1", "key-c").getToken();
    expect(
      events
        .filter((e) => e.type === "evicted")
        .map((e) => JSON.parse(e.key)[3])
        .at(-1),
    ).toBe("a8");
  });

  it("keeps a value made for each session with it, and drops both together", async () => {
    let made = 0;
    const sessions = tokens.sessions(credential(), {
      maxSessions: 1,
      attach: (source) => ({ source, n: ++made }),
    });
    const first = sessions.get("x");
    expect(sessions.get("x")).toBe(first);
    sessions.get("y");
    expect(sessions.get("x")).not.toBe(first);
    expect(made).toBe(3);
  });

  it("refuses a bound that is not a positive integer", () => {
    for (const maxSessions of [0, -1, 1.5, Number.NaN]) {
      expect(() => tokens.sessions(credential(), { maxSessions, attach: (x) => x })).toThrow(
        "maxSessions must be a positive integer",
      );
    }
  });
});
