export { createStateStore, type StateStoreOptions } from "./create-state-store.js";
export { createMemoryStore, type MemoryStoreOptions } from "./memory-store.js";
export { createRedisStore, type RedisStoreOptions } from "./redis-store.js";
export {
  type Admission,
  type BudgetGate,
  type BudgetOp,
  type KeyGates,
  type OpResult,
  type RateCheck,
  type RateGate,
  type RateMode,
  type RateOp,
  type SlotGate,
  type SlotOp,
  StateError,
  type StateErrorCode,
  type StateHealth,
  type StateOp,
  type StateStore,
} from "./state-store.js";
