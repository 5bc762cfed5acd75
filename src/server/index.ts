export { type Caller, callerKey } from "./caller.js";
export {
  type Door,
  type DoorCall,
  type ErrorWriter,
  type PublicHttpHandler,
  publicDoor,
  type Refusal,
  type RefusalCode,
} from "./doors.js";
export {
  type GatewayServer,
  type GatewayServerOptions,
  startGatewayServer,
} from "./gateway-server.js";
export {
  type MetricsListener,
  requireMetricsKey,
  startMetricsListener,
} from "./metrics-listener.js";
