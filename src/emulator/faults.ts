import type { EndpointName, Fault } from "./types.js";

const ENDPOINTS: ReadonlySet<string> = new Set<EndpointName>([
  "token",
  "chat",
  "chat.retrieve",
  "chat.messages",
  "chat.cancel",
  "chat.submit_tool_outputs",
  "workflow.run",
  "workflow.stream_run",
  "workflow.stream_resume",
  "workflow.resume",
  "workflow.history",
  "workflow.node_output",
  "workflow.chat",
  "files.upload",
  "files.retrieve",
  "audio.speech",
  "audio.transcriptions",
  "audio.voices",
  "workspaces.list",
  "bots.list",
  "bots.published_list",
  "workflows.list",
]);

/** What the faults decided for one call, taken when the call arrives. */
export interface FaultPlan {
  /** Delay before answering, in ms (0 = none). */
  latencyMs: number;
  /**
   * Answer with this HTTP status and an error body instead of handling the call: Coze's
   * envelope for `cozeCode` when set (a `coze_error` fault), else one that fits the status.
   */
  status?: { status: number; retryAfterSeconds?: number; cozeCode?: number };
  /** Destroy the socket after this many SSE events (non-stream: instead of answering). */
  resetAfter?: number;
  /** Stop writing after this many SSE events (non-stream: never answer). */
  stallAfter?: number;
  /** Write one malformed line after this many SSE events (non-stream: truncated JSON). */
  malformedAfter?: number;
  /** The token endpoint is down (503, OAuth error body). */
  tokenDown: boolean;
}

/** The fault store behind `emulator.faults` and `/__emulator/faults`. */
export interface FaultStore {
  /** Adds a fault; throws `TypeError` when it is malformed. */
  inject(fault: unknown): void;
  /** Removes every fault, `short_tokens` included. */
  clear(): void;
  /** Consumes the faults that match a call to `endpoint` and says what to do. */
  take(endpoint: EndpointName): FaultPlan;
  /** Lifetime forced by `short_tokens`, if any. */
  tokenLifetimeSeconds(): number | undefined;
  /** Whether a `free_plan` fault puts the account of app `clientId` on the free plan. */
  freePlan(clientId: string): boolean;
}

interface Armed {
  fault: Fault;
  /** Calls left; `Infinity` = until cleared. */
  left: number;
}

/** Creates an empty fault store. */
export function createFaultStore(): FaultStore {
  let armed: Armed[] = [];
  let shortLifetime: number | undefined;
  // Apps on the free plan; `null` stands for every app.
  let freePlans = new Set<string | null>();

  const takeFirst = (kind: Fault["kind"], endpoint: EndpointName): Fault | undefined => {
    const hit = armed.find((a) => a.fault.kind === kind && matches(a.fault, endpoint));
    if (!hit) return undefined;
    hit.left -= 1;
    if (hit.left <= 0) armed = armed.filter((a) => a !== hit);
    return hit.fault;
  };

  return {
    inject(input) {
      const fault = validateFault(input);
      if (fault.kind === "short_tokens") {
        shortLifetime = fault.lifetimeSeconds;
        return;
      }
      if (fault.kind === "free_plan") {
        freePlans.add(fault.clientId ?? null);
        return;
      }
      armed.push({ fault, left: defaultTimes(fault) });
    },
    clear() {
      armed = [];
      shortLifetime = undefined;
      freePlans = new Set();
    },
    take(endpoint) {
      const plan: FaultPlan = { latencyMs: 0, tokenDown: false };
      const latency = takeFirst("latency", endpoint);
      if (latency?.kind === "latency") plan.latencyMs = latency.ms;
      const status = takeFirst("status", endpoint) ?? takeFirst("coze_error", endpoint);
      if (status?.kind === "status" || status?.kind === "coze_error") {
        plan.status = { status: status.kind === "status" ? status.status : (status.status ?? 200) };
        if (status.kind === "coze_error") plan.status.cozeCode = status.code;
        if (status.retryAfterSeconds !== undefined) {
          plan.status.retryAfterSeconds = status.retryAfterSeconds;
        }
      }
      const reset = takeFirst("reset", endpoint);
      if (reset?.kind === "reset") plan.resetAfter = reset.afterEvents;
      const stall = takeFirst("stall", endpoint);
      if (stall?.kind === "stall") plan.stallAfter = stall.afterEvents;
      const malformed = takeFirst("malformed", endpoint);
      if (malformed?.kind === "malformed") plan.malformedAfter = malformed.afterEvents;
      if (endpoint === "token") plan.tokenDown = takeFirst("token_down", endpoint) !== undefined;
      return plan;
    },
    tokenLifetimeSeconds: () => shortLifetime,
    freePlan: (clientId) => freePlans.has(null) || freePlans.has(clientId),
  };
}

function matches(fault: Fault, endpoint: EndpointName): boolean {
  if (fault.kind === "token_down") return endpoint === "token";
  if (fault.kind === "short_tokens" || fault.kind === "free_plan") return false;
  // An omitted endpoint means "any API endpoint": the token endpoint is only hit when named, so
  // a blanket fault does not also break authentication.
  return fault.endpoint === undefined ? endpoint !== "token" : fault.endpoint === endpoint;
}

function defaultTimes(fault: Fault): number {
  if (fault.kind === "short_tokens" || fault.kind === "free_plan") return Number.POSITIVE_INFINITY;
  const times = fault.times;
  if (times !== undefined) return times;
  return fault.kind === "latency" || fault.kind === "token_down" ? Number.POSITIVE_INFINITY : 1;
}

/** Checks an untrusted fault (e.g. from the admin HTTP surface); throws `TypeError`. */
export function validateFault(input: unknown): Fault {
  if (typeof input !== "object" || input === null) throw new TypeError("fault must be an object");
  const f = input as Record<string, unknown>;
  const count = (name: string, required: boolean, min = 0): void => {
    const v = f[name];
    if (v === undefined && !required) return;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      throw new TypeError(`fault.${name} must be an integer >= ${min}`);
    }
  };
  if (f.endpoint !== undefined && !(typeof f.endpoint === "string" && ENDPOINTS.has(f.endpoint))) {
    throw new TypeError(`fault.endpoint is not a known endpoint: ${String(f.endpoint)}`);
  }
  switch (f.kind) {
    case "latency":
      count("ms", true);
      count("times", false, 1);
      break;
    case "status":
      count("status", true, 100);
      if ((f.status as number) > 599) throw new TypeError("fault.status must be <= 599");
      count("times", true, 1);
      count("retryAfterSeconds", false);
      break;
    case "reset":
    case "stall":
    case "malformed":
      count("afterEvents", true);
      count("times", false, 1);
      break;
    case "token_down":
      count("times", false, 1);
      break;
    case "short_tokens":
      count("lifetimeSeconds", true, 1);
      break;
    case "coze_error":
      count("code", true, 1);
      if (f.status !== undefined) {
        count("status", true, 100);
        if ((f.status as number) > 599) throw new TypeError("fault.status must be <= 599");
      }
      count("times", true, 1);
      count("retryAfterSeconds", false);
      break;
    case "free_plan":
      if (f.clientId !== undefined && (typeof f.clientId !== "string" || f.clientId === "")) {
        throw new TypeError("fault.clientId must be a non-empty string");
      }
      break;
    default:
      throw new TypeError(`unknown fault kind: ${String(f.kind)}`);
  }
  return structuredClone(f) as Fault;
}
