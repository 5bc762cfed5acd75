import type { MessageInitShape } from "@bufbuild/protobuf";
import { type CallOptions, createClient, type Transport } from "@connectrpc/connect";
import type * as v1 from "../../src/gen/grpc/reflection/v1/reflection_pb.js";
import type * as v1alpha from "../../src/gen/grpc/reflection/v1alpha/reflection_pb.js";

/** A reflection request, as either version takes it (the two are the same message). */
export type ReflectionRequestInit = MessageInitShape<typeof v1.ServerReflectionRequestSchema>;

/** A reflection answer of either version. */
export type ReflectionResponse = v1.ServerReflectionResponse | v1alpha.ServerReflectionResponse;

/** One open `ServerReflectionInfo` stream, driven one question at a time. */
export interface ReflectionStream {
  /** Sends `request` and waits for the answer; rejects with the stream's error if it fails. */
  ask(request: ReflectionRequestInit): Promise<ReflectionResponse>;
  /** Half-closes the stream and waits for the server to end it with no further answer. */
  end(): Promise<"ended">;
  /** Asks nothing and waits for the call to fail; resolves with its error. */
  failure(): Promise<unknown>;
  /** Cancels the call (teardown). */
  cancel(): void;
}

/**
 * Opens a bidirectional `ServerReflectionInfo` call of `service` (v1 or v1alpha) on `transport`
 * with a real connect-node client. Each {@link ReflectionStream.ask} writes one request and
 * reads one response, so a test sees the server answer each request in turn on one stream.
 */
export function openReflection(
  service: typeof v1.ServerReflection | typeof v1alpha.ServerReflection,
  transport: Transport,
  options: CallOptions,
): ReflectionStream {
  const abort = new AbortController();
  const queue: ReflectionRequestInit[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  const poke = () => wake?.();
  async function* requests() {
    // Ends once closed; waits for the next ask otherwise.
    for (;;) {
      const next = queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (closed) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  }
  // Both versions' methods have the same shape; the client builds requests of `service`'s own
  // schema from the plain objects it is given.
  const client = createClient(service as typeof v1.ServerReflection, transport);
  const responses = client
    .serverReflectionInfo(requests(), { ...options, signal: abort.signal })
    [Symbol.asyncIterator]();
  const cancel = () => {
    closed = true;
    poke();
    abort.abort();
  };
  return {
    async ask(request) {
      queue.push(request);
      poke();
      let next: IteratorResult<ReflectionResponse>;
      try {
        next = await responses.next();
      } catch (e) {
        // Once the server has ended the call with an error, the call is over: grpc-go and
        // grpcio clients reset the stream then; this one is cancelled likewise, rather than
        // left half open waiting for a request that will never be written.
        cancel();
        throw e;
      }
      if (next.done === true) throw new Error("the stream ended without an answer");
      return next.value;
    },
    async end() {
      closed = true;
      poke();
      const next = await responses.next();
      if (next.done !== true) throw new Error("the server sent an answer nobody asked for");
      return "ended";
    },
    async failure() {
      try {
        const next = await responses.next();
        throw new Error(
          next.done === true ? "the stream ended cleanly" : "an answer nobody asked for",
        );
      } catch (e) {
        cancel();
        return e;
      }
    },
    cancel,
  };
}
