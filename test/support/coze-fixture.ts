import { parsePrivateKey } from "../../src/config/index.js";
import {
  type CozeClient,
  type CozeClientOptions,
  createCozeClient,
} from "../../src/coze/client.js";
import { type Clock, systemClock } from "../../src/coze/clock.js";
import { createPools, type Pools } from "../../src/coze/pools.js";
import {
  createTokenCache,
  type TokenCache,
  type TokenCacheOptions,
} from "../../src/coze/token-cache.js";
import {
  type Emulator,
  type EmulatorOptions,
  type GeneratedApp,
  startEmulator,
} from "../../src/emulator/index.js";

/** A clock whose time can be moved forward without waiting; sleeps are real. */
export interface ShiftableClock extends Clock {
  shift(ms: number): void;
}

/** Real time plus an offset the test moves: share it between the emulator and the client. */
export function createShiftableClock(): ShiftableClock {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    sleep: systemClock.sleep,
    shift(ms) {
      offset += ms;
    },
  };
}

/** Everything a client test needs: an emulator with one app, a token cache and a client. */
export interface CozeFixture {
  emulator: Emulator;
  app: GeneratedApp;
  pools: Pools;
  tokens: TokenCache;
  client: CozeClient;
  clock: ShiftableClock;
  /** A second client on the same token cache, with other options. */
  clientWith(options: Partial<CozeClientOptions>): CozeClient;
  close(): Promise<void>;
}

/** Starts an emulator and a client wired to it. Close it in `afterEach`/`afterAll`. */
export async function startCozeFixture(
  options: {
    emulator?: EmulatorOptions;
    tokens?: Partial<TokenCacheOptions>;
    client?: Partial<CozeClientOptions>;
  } = {},
): Promise<CozeFixture> {
  const clock = createShiftableClock();
  const emulator = await startEmulator({ now: clock.now, ...options.emulator });
  const app = await emulator.createApp();
  const pools = createPools();
  const tokens = createTokenCache({ pools, clock, ...options.tokens });
  const source = tokens.source({
    baseUrl: emulator.url,
    clientId: app.clientId,
    publicKeyId: app.publicKeyId,
    privateKey: parsePrivateKey(app.privateKeyPem),
  });
  const clientWith = (extra: Partial<CozeClientOptions>) =>
    createCozeClient({
      baseUrl: emulator.url,
      tokens: source,
      pools,
      clock,
      ...options.client,
      ...extra,
    });
  return {
    emulator,
    app,
    pools,
    tokens,
    clock,
    client: clientWith({}),
    clientWith,
    async close() {
      await pools.destroy();
      await emulator.close();
    },
  };
}
