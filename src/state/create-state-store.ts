import type { StateConfig } from "../config/index.js";
import { type Clock, systemClock } from "../coze/clock.js";
import { createMemoryStore } from "./memory-store.js";
import { createRedisStore } from "./redis-store.js";
import type { StateHealth, StateStore } from "./state-store.js";

/** Options of {@link createStateStore}. */
export interface StateStoreOptions {
  /** Time for windows, periods and the flush timer. Default the system clock. */
  clock?: Clock;
  /** Called when a shared store becomes unreachable or reachable again. */
  onHealth?: (health: StateHealth) => void;
}

/** The store `config` names: in memory, or on the Redis server at `config.url`. */
export function createStateStore(config: StateConfig, options: StateStoreOptions = {}): StateStore {
  const clock = options.clock ?? systemClock;
  if (config.store === "memory") return createMemoryStore({ now: () => clock.now() });
  return createRedisStore({
    url: config.url,
    timeoutMs: config.timeoutMs,
    prefix: config.prefix,
    flushMs: config.flushMs,
    clock,
    onHealth: options.onHealth,
  });
}
