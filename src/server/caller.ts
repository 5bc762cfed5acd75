/**
 * The caller identity is defined by the service layer, which reads it (`ctx.values.get(callerKey)`);
 * the server's auth interceptor writes it. One key for both, in the direction dependencies point
 * (server → service).
 */
export { type Caller, callerKey } from "../service/caller.js";
