export { catalog } from "./catalog.js";
export { type AppJwtClaims, signAppJwt } from "./client-jwt.js";
export { generateApp } from "./keys.js";
export { startEmulator } from "./server.js";
export type { EmulatorSpace, SpaceEntry, SpaceEntryInput, SpaceEntryKind } from "./space.js";
export type {
  Emulator,
  EmulatorApp,
  EmulatorOptions,
  EmulatorStats,
  EndpointName,
  Fault,
  GeneratedApp,
  PatOptions,
  RecordedRequest,
} from "./types.js";
