import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.js";

/** Options of {@link createHealthService}. */
export interface HealthServiceOptions {
  /** Whether the server can take traffic (config loaded, upstream reachable, ...). */
  ready: () => boolean;
  /** How often an open Watch re-evaluates `ready`, in milliseconds. */
  pollIntervalMs: number;
  /**
   * What `/readyz` says besides its status, such as the shared state store's (`"state": "redis
   * unreachable since …; limits fail open"`). Default nothing.
   */
  details?: () => Readonly<Record<string, string>>;
}

/**
 * The standard `grpc.health.v1.Health` service of the server, plus the switches the server
 * flips. One status covers the server and every registered service.
 */
export interface HealthService {
  /** The implementation to register on the router. */
  readonly impl: ServiceImpl<typeof Health>;
  /** Declares the fully qualified service names Check and Watch know (besides ""). */
  setServices(names: Iterable<string>): void;
  /** Whether the server reports SERVING: ready and not shutting down. */
  serving(): boolean;
  /** What `/readyz` adds to its status (see {@link HealthServiceOptions.details}). */
  details(): Readonly<Record<string, string>> | undefined;
  /**
   * Turns every status NOT_SERVING for good. Open Watch calls send NOT_SERVING and then end with
   * `Code.Unavailable`.
   */
  shutdown(): void;
}

/**
 * Creates the health service. Check answers SERVING or NOT_SERVING for `""` and every registered
 * service, and `Code.NotFound` for any other name. Watch sends the current status at once and
 * again whenever it changes (readiness is polled every `pollIntervalMs` while a Watch is open),
 * answers SERVICE_UNKNOWN for an unknown name without ending, as the gRPC health protocol asks,
 * and ends with `Code.Unavailable` on shutdown.
 */
export function createHealthService(options: HealthServiceOptions): HealthService {
  let services = new Set<string>([""]);
  let shuttingDown = false;
  const shutdownListeners = new Set<() => void>();

  const serving = () => !shuttingDown && options.ready();
  const status = (service: string): ServingStatus => {
    if (!services.has(service)) return ServingStatus.SERVICE_UNKNOWN;
    return serving() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  const response = (s: ServingStatus): HealthCheckResponse =>
    create(HealthCheckResponseSchema, { status: s });

  /** Resolves after the poll interval or at shutdown; rejects when the call is cancelled. */
  const nextChange = (signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        shutdownListeners.delete(done);
        signal.removeEventListener("abort", abort);
      };
      const done = () => {
        cleanup();
        resolve();
      };
      const abort = () => {
        cleanup();
        reject(signal.reason);
      };
      const timer = setTimeout(done, options.pollIntervalMs);
      shutdownListeners.add(done);
      signal.addEventListener("abort", abort);
      if (signal.aborted) abort();
    });

  const impl: ServiceImpl<typeof Health> = {
    check(req) {
      const current = status(req.service);
      if (current === ServingStatus.SERVICE_UNKNOWN) {
        throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
      }
      return response(current);
    },
    async *watch(req, ctx) {
      let last: ServingStatus | undefined;
      for (;;) {
        const current = status(req.service);
        if (current !== last) {
          yield response(current);
          last = current;
        }
        if (shuttingDown) throw new ConnectError("server is shutting down", Code.Unavailable);
        await nextChange(ctx.signal);
      }
    },
  };

  return {
    impl,
    setServices(names) {
      services = new Set(["", ...names]);
    },
    serving,
    details: () => options.details?.(),
    shutdown() {
      shuttingDown = true;
      for (const wake of [...shutdownListeners]) wake();
    },
  };
}
