import type { DescService } from "@bufbuild/protobuf";
import type { Runtime } from "./gateway-runtime.js";
import { AudioService } from "./gen/cozegateway/v1/audio_pb.js";
import { ChatService } from "./gen/cozegateway/v1/chat_pb.js";
import { ModelService } from "./gen/cozegateway/v1/model_pb.js";
import { WorkflowService } from "./gen/cozegateway/v1/workflow_pb.js";
import type { Door, PublicHttpHandler } from "./server/index.js";
import {
  type Caller,
  type CoreContext,
  type CoreImpl,
  callerOf,
  type ServiceImpls,
} from "./service/index.js";

/**
 * The runtime in force and those still finishing calls, with what the server mounts once and
 * keeps across reloads: an authenticator, the Connect services and the OpenAI door, each of
 * which runs a call on the runtime whose keys authenticated it. So a call keeps one config from
 * its start to its end (streams included), and new calls get the new one.
 */
export interface RuntimeHolder {
  /** The runtime new calls get. */
  readonly current: Runtime;
  /** The current runtime and every replaced one with calls still under way. */
  live(): Runtime[];
  /** Authenticates under the current runtime's keys. */
  authenticate(key: string): Caller | undefined;
  /** Whether `caller` is one of the current runtime's: a caller of a replaced one is not. */
  callerCurrent(caller: Caller): boolean;
  /** The core, each call on its caller's runtime (in process, without a caller: the current). */
  readonly services: ServiceImpls;
  /** The OpenAI-compatible door, each request on its caller's runtime. */
  readonly openAiDoor: Door;
  /** `/metrics` under the current runtime's `server.metrics.key`. */
  readonly metricsRoute: PublicHttpHandler;
  /**
   * Makes `next` current. The replaced runtime finishes its calls; `onDrained` gets it once the
   * last one has ended (at once when none is under way).
   */
  swap(next: Runtime): void;
}

/** A runtime and its calls under way. */
interface Slot {
  readonly runtime: Runtime;
  calls: number;
  replaced: boolean;
}

/**
 * Holds `initial` as the current runtime. `onDrained` is told of each replaced runtime once its
 * last call has ended, to release what no live runtime uses any more.
 */
export function createRuntimeHolder(
  initial: Runtime,
  onDrained: (runtime: Runtime) => void,
): RuntimeHolder {
  const owners = new WeakMap<Caller, Slot>();
  const draining = new Set<Slot>();
  const adopt = (runtime: Runtime): Slot => {
    const slot: Slot = { runtime, calls: 0, replaced: false };
    for (const caller of runtime.callers) owners.set(caller, slot);
    return slot;
  };
  let current = adopt(initial);

  const drained = (slot: Slot) => {
    draining.delete(slot);
    onDrained(slot.runtime);
  };
  /** Counts a call on its caller's runtime, until the returned function is called (once). */
  const enter = (caller: Caller | undefined): { runtime: Runtime; leave: () => void } => {
    const slot = (caller === undefined ? undefined : owners.get(caller)) ?? current;
    slot.calls++;
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      slot.calls--;
      if (slot.replaced && slot.calls === 0) drained(slot);
    };
    return { runtime: slot.runtime, leave };
  };

  const services: ServiceImpls = {
    chat: dispatch(ChatService, (r) => r.services.chat, enter),
    workflow: dispatch(WorkflowService, (r) => r.services.workflow, enter),
    model: dispatch(ModelService, (r) => r.services.model, enter),
    audio: dispatch(AudioService, (r) => r.services.audio, enter),
  };
  // What a door says of itself (its path, labels, error wording, which requests count against
  // limits) does not depend on the config: the first runtime's door says it for all.
  const openAiDoor: Door = {
    ...initial.openAi,
    handle(req, res, call) {
      const { runtime, leave } = enter(call.caller);
      try {
        // The door answers a stream in full before its promise settles.
        return runtime.openAi.handle(req, res, call).finally(leave);
      } catch (err) {
        leave();
        throw err;
      }
    },
  };

  return {
    get current() {
      return current.runtime;
    },
    live: () => [current.runtime, ...[...draining].map((s) => s.runtime)],
    authenticate: (key) => current.runtime.authenticate(key),
    callerCurrent: (caller) => owners.get(caller) === current,
    services,
    openAiDoor,
    metricsRoute: (req, res) => current.runtime.metricsRoute(req, res),
    swap(next) {
      const old = current;
      current = adopt(next);
      old.replaced = true;
      draining.add(old);
      if (old.calls === 0) drained(old);
    },
  };
}

type Enter = (caller: Caller | undefined) => { runtime: Runtime; leave: () => void };
type Method = (req: unknown, ctx: CoreContext) => unknown;

/**
 * The core service `service` whose every call runs on the runtime of its caller, counted there
 * until it ends: a unary call when its promise settles, a stream when it finishes or its
 * context's signal aborts (Connect aborts it when a call is over, however it ended, also for a
 * stream that never started).
 */
function dispatch<S extends DescService>(
  service: S,
  implOf: (runtime: Runtime) => CoreImpl<S>,
  enter: Enter,
): CoreImpl<S> {
  const out: Record<string, Method> = {};
  for (const method of service.methods) {
    const name = method.localName;
    const invoke = (runtime: Runtime, req: unknown, ctx: CoreContext) => {
      const impl = implOf(runtime) as unknown as Record<string, Method>;
      return (impl[name] as Method).call(impl, req, ctx);
    };
    if (method.methodKind === "server_streaming") {
      out[name] = (req, ctx) => {
        const { runtime, leave } = enter(callerOf(ctx));
        if (ctx.signal.aborted) leave();
        else ctx.signal.addEventListener("abort", leave, { once: true });
        return ending(invoke(runtime, req, ctx) as AsyncIterable<unknown>, () => {
          ctx.signal.removeEventListener("abort", leave);
          leave();
        });
      };
    } else {
      out[name] = (req, ctx) => {
        const { runtime, leave } = enter(callerOf(ctx));
        try {
          return Promise.resolve(invoke(runtime, req, ctx)).finally(leave);
        } catch (err) {
          leave();
          throw err;
        }
      };
    }
  }
  return out as unknown as CoreImpl<S>;
}

/** `source`, calling `end` once it finishes, fails or is abandoned. */
async function* ending<T>(source: AsyncIterable<T>, end: () => void): AsyncGenerator<T> {
  try {
    yield* source;
  } finally {
    end();
  }
}
