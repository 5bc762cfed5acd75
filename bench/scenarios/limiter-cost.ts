// The limiter's own CPU per request, apart from the gateway: `admit` then `finish` (the bench
// key's limits, 16 Coze tokens), in this process, in memory and on the bench's Redis server.
// A figure without a target, to read the side-by-side ratios by: on a shared machine their
// spread is wider than the few per cent they judge, this one's is not.
import type { KeyLimitsConfig } from "../../src/config/index.js";
import { systemClock } from "../../src/coze/clock.js";
import { createKeyLimiter } from "../../src/limits/index.js";
import { createMemoryStore, createRedisStore } from "../../src/state/index.js";
import type { StateStore } from "../../src/state/state-store.js";
import { sleep } from "../lib/proc.js";
import type { BenchRedis } from "../lib/redis.js";

/** µs of CPU per request (min over 5 rounds), by store and concurrency. */
export interface LimiterCost {
  memory: number;
  redisC1?: number;
  redisC16?: number;
}

const limits: KeyLimitsConfig = {
  requestsPerMinute: 1_000_000,
  tokensPerMinute: 1_000_000_000,
  tokensPerDay: 1_000_000_000_000,
  maxStreams: 1000,
  quota: { tokens: 1_000_000_000_000, per: "month" },
};

/** CPU µs per request of `requests` requests, `concurrency` at a time; the best of 5 rounds. */
async function cost(store: StateStore, concurrency: number, requests: number): Promise<number> {
  const limiter = createKeyLimiter({
    keys: [{ name: "cost", limits }],
    store,
    fail: "closed",
    clock: systemClock,
  });
  const one = async () => {
    const request = { limitHold: undefined };
    const verdict = await limiter.admit(request, "cost", true);
    if (!verdict?.ok) throw new Error("the limiter refused a request of the cost run");
    limiter.finish(request, "cost", 16);
  };
  const round = async (n: number) => {
    let left = n;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (left-- > 0) await one();
      }),
    );
  };
  await round(requests);
  const best: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.cpuUsage();
    await round(requests);
    const t = process.cpuUsage(t0);
    best.push((t.user + t.system) / requests);
  }
  limiter.close();
  return Math.min(...best);
}

/** Measures the limiter on the memory store and, when there is one, on `redis`. */
export async function limiterCost(redis: BenchRedis | undefined): Promise<LimiterCost> {
  const out: LimiterCost = { memory: await cost(createMemoryStore(), 1, 50_000) };
  if (redis) {
    const store = createRedisStore({
      url: redis.url,
      timeoutMs: 1000,
      prefix: "limiter-cost:",
      flushMs: 50,
      clock: systemClock,
    });
    for (let i = 0; i < 100 && !store.health().ok; i++) await sleep(20);
    out.redisC1 = await cost(store, 1, 3000);
    out.redisC16 = await cost(store, 16, 6000);
    await store.close();
  }
  return out;
}
