// The channels' clients by credential kind (coze-api.md §11, §12), against the emulator.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePrivateKey } from "../config/private-key.js";
import type { CozeClient } from "../coze/client.js";
import { CozeError } from "../coze/errors.js";
import { createPools, type Pools } from "../coze/pools.js";
import { createTokenCache, type TokenCache } from "../coze/token-cache.js";
import { demoConfig } from "../demo.js";
import { catalog, type Emulator, type GeneratedApp, startEmulator } from "../emulator/index.js";
import { createChannels, sameChannelConfig } from "./channels.js";
import { createTenant, inProcessTenant } from "./tenant.js";

const ACCOUNT = "7300000000000000001";
const ENTERPRISE = "volcano_210195";
let emulator: Emulator;
let app: GeneratedApp;
let pools: Pools;
let tokens: TokenCache;

beforeAll(async () => {
  emulator = await startEmulator();
  app = await emulator.createApp({ accountIds: [ACCOUNT], enterpriseIds: [ENTERPRISE] });
  pools = createPools();
  tokens = createTokenCache({ pools });
});
afterAll(async () => {
  await pools.destroy();
  await emulator.close();
});

/** The demo channel with `edit` applied, as a live channel. */
function channel(edit: (c: ReturnType<typeof demoChannel>) => void = () => {}) {
  const config = demoChannel();
  edit(config);
  const [live] = createChannels({ channels: [config], tokens, pools }).all;
  if (live === undefined) throw new Error("no channel");
  return live;
}

function demoChannel() {
  const config = demoConfig({ port: 0, emulatorUrl: emulator.url, app, apiKey: "k".repeat(20) });
  const [first] = config.channels;
  if (first === undefined) throw new Error("no channel");
  return first;
}

const chat = (client: CozeClient, conversationId?: string) =>
  client.chat.chat({
    botId: catalog.bots.echo,
    userId: "u1",
    ...(conversationId === undefined ? {} : { conversationId }),
    messages: [{ role: "user", content: "hi", contentType: "text" }],
  });

const jwt = () => ({
  baseUrl: emulator.url,
  clientId: app.clientId,
  publicKeyId: app.publicKeyId,
  privateKey: parsePrivateKey(app.privateKeyPem),
  durationSeconds: 3600,
});

describe("channel credentials", () => {
  it("buys cross-account and enterprise tokens, and their conversations stay theirs", async () => {
    const account = channel((c) => {
      c.credential = { ...jwt(), accountId: ACCOUNT };
    });
    const enterprise = channel((c) => {
      c.credential = { ...jwt(), enterpriseId: ENTERPRISE };
    });
    const made = await chat(account.client);
    expect((await chat(account.client, made.conversationId)).conversationId).toBe(
      made.conversationId,
    );
    const err = await chat(enterprise.client, made.conversationId).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CozeError);
    expect((err as CozeError).cozeCode).toBe(4002);
    expect((await chat(enterprise.client)).answer).toBe("You said: hi");
  });

  it("fails with access_deny, at the token step, for an account that did not authorise the app", async () => {
    const stranger = channel((c) => {
      c.credential = { ...jwt(), accountId: "7300000000000000009" };
    });
    const err = await chat(stranger.client).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CozeError);
    expect(err).toMatchObject({ code: "permission", step: "token", cozeCode: "access_deny" });
  });

  it("sends a PAT as it is, for every key and end user alike", async () => {
    const before = emulator.stats().tokenRequests;
    const pat = emulator.createPat();
    const live = channel((c) => {
      c.credential = { kind: "pat", token: pat.token };
    });
    const tenant = createTenant(Buffer.alloc(32, 1), Buffer.alloc(32, 2));
    expect(live.clientFor(tenant.sessionName)).toBe(live.client);
    expect(live.clientForUser(tenant, "alice")).toBe(live.client);
    expect((await chat(live.client)).answer).toBe("You said: hi");
    expect(emulator.stats().tokenRequests).toBe(before);
  });
});

describe("clientForUser", () => {
  const tenant = createTenant(Buffer.alloc(32, 3), Buffer.alloc(32, 4));

  it("is the key's session client unless the channel keeps sessions per end user", () => {
    const live = channel();
    expect(live.clientForUser(tenant, "alice")).toBe(live.clientFor(tenant.sessionName));
    expect(live.clientForUser(tenant, "bob")).toBe(live.clientFor(tenant.sessionName));
  });

  it("is one client per end user with per_user, the session-less one in process", async () => {
    const live = channel((c) => {
      c.sessions = { perUser: true, maxCached: 2 };
      c.credential = { ...jwt(), sessionName: "gw" };
    });
    const alice = live.clientForUser(tenant, "alice");
    expect(live.clientForUser(tenant, "alice")).toBe(alice);
    expect(live.clientForUser(tenant, "bob")).not.toBe(alice);
    expect(live.clientForUser(inProcessTenant, "alice")).toBe(live.client);
    await chat(alice);
    // The channel's session_name stays a prefix of the end user's (as it does for keys).
    expect(emulator.stats().tokensBySession[`gw:${tenant.userId("alice")}`]).toBe(1);
  });
});

describe("a reload's channels (issue 15)", () => {
  const tenant = createTenant(Buffer.alloc(32, 5), Buffer.alloc(32, 6));
  const perUser = (edit: (c: ReturnType<typeof demoChannel>) => void = () => {}) => {
    const config = demoChannel();
    config.sessions = { perUser: true, maxCached: 10 };
    edit(config);
    return config;
  };

  it("keeps a channel whose config is the same, its key parsed again, and its sessions with it", async () => {
    const first = createChannels({ channels: [perUser()], tokens, pools });
    const [live] = first.all;
    if (live === undefined) throw new Error("no channel");
    await chat(live.clientForUser(tenant, "alice"));
    // The config read again: equal values, another KeyObject for the same key.
    const again = createChannels({ channels: [perUser()], tokens, pools, previous: first });
    expect(again.get("demo")).toBe(live);
    const before = emulator.stats().tokenRequests;
    await chat(live.clientForUser(tenant, "alice"));
    expect(emulator.stats().tokenRequests).toBe(before);
  });

  it("makes a changed channel anew, and a released one's sessions leave the token cache", async () => {
    const first = createChannels({ channels: [perUser()], tokens, pools });
    const [live] = first.all;
    if (live === undefined) throw new Error("no channel");
    await chat(live.clientForUser(tenant, "bob"));
    const changed = perUser((c) => {
      c.timeouts = { ...c.timeouts, requestMs: 90_000 };
    });
    const next = createChannels({ channels: [changed], tokens, pools, previous: first });
    expect(next.get("demo")).not.toBe(live);
    const held = tokens.stats().tokensCached;
    live.release();
    expect(tokens.stats().tokensCached).toBe(held - 1);
  });

  it("keeps an unchanged channel's gate with its calls under way; changed limits make a new gate", async () => {
    const limited = (maxConcurrent: number) => {
      const config = demoChannel();
      config.limits = { maxConcurrent, queue: 0, queueTimeoutMs: 1000 };
      return config;
    };
    const first = createChannels({ channels: [limited(1)], tokens, pools });
    const gate = first.get("demo")?.gate;
    if (gate === undefined) throw new Error("no gate");
    const held = await gate.enter(new AbortController().signal);
    const kept = createChannels({ channels: [limited(1)], tokens, pools, previous: first });
    // The same gate: its one place is still taken.
    expect(kept.get("demo")?.gate).toBe(gate);
    expect(kept.get("demo")?.gate?.active).toBe(1);
    const raised = createChannels({ channels: [limited(2)], tokens, pools, previous: kept });
    const fresh = raised.get("demo")?.gate;
    expect(raised.get("demo")).not.toBe(kept.get("demo"));
    expect(fresh).not.toBe(gate);
    expect(fresh?.active).toBe(0);
    held();
    expect(gate.active).toBe(0);
  });

  it("tells configs apart by every setting and by private key material", async () => {
    const base = demoChannel();
    expect(sameChannelConfig(base, demoChannel())).toBe(true);
    const other = await emulator.createApp();
    const rekeyed = demoChannel();
    rekeyed.credential = { ...jwt(), privateKey: parsePrivateKey(other.privateKeyPem) };
    expect(sameChannelConfig(base, rekeyed)).toBe(false);
    const polled = demoChannel();
    polled.polling = { ...polled.polling, intervalMs: 100 };
    expect(sameChannelConfig(base, polled)).toBe(false);
    const gated = demoChannel();
    gated.limits = { maxConcurrent: 4, queue: 0, queueTimeoutMs: 1000 };
    expect(sameChannelConfig(base, gated)).toBe(false);
    const listing = demoChannel();
    listing.discovery = { ...listing.discovery, intervalMs: 60_000 };
    expect(sameChannelConfig(base, listing)).toBe(false);
    const pat = { ...demoChannel(), credential: { kind: "pat" as const, token: "pat_x" } };
    expect(sameChannelConfig(pat, { ...pat, credential: { ...pat.credential } })).toBe(true);
    expect(sameChannelConfig(pat, { ...pat, credential: { kind: "pat", token: "pat_y" } })).toBe(
      false,
    );
    expect(sameChannelConfig(base, pat)).toBe(false);
  });
});
