import { Agent } from "node:http";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  ChatMessageSchema,
  ChatRequestSchema,
  Role,
} from "../../src/gen/cozegateway/v1/chat_pb.js";
import { alternate, type Bench, type ProxyUnderTest } from "../lib/context.js";
import { h2load, type LoadResult, wrk } from "../lib/drivers.js";
import { cpuMs } from "../lib/proc.js";
import { responsesShape, streamCompletion } from "../lib/sse-client.js";
import { type Spread, spread } from "../lib/stats.js";

/** One measured load run of one proxy. */
export interface UnaryRun extends LoadResult {
  /** CPU time of the proxy process per successful request, in ms (utime+stime from /proc). */
  cpuMsPerRequest: number;
  /** The emulator's CPU per request, for context. */
  emulatorCpuMsPerRequest: number;
}

/** A scenario's runs per proxy, and the side-by-side ratios per repetition. */
export interface UnaryScenario {
  name: string;
  concurrency: number;
  runs: Record<string, UnaryRun[]>;
  /** gateway rps / baseline rps, per repetition. */
  throughputRatio: Spread;
  /** gateway CPU per request / baseline CPU per request, per repetition. */
  cpuRatio: Spread;
  /** gateway p50 − baseline p50 in ms, per repetition (wrk runs only). */
  addedP50Ms?: Spread;
}

/** The REST body of the non-stream scenarios: the echo bot, one short user message. */
export const restBody = JSON.stringify({
  model: "coze-echo",
  messages: [{ role: "user", content: "Hello" }],
});

/** Runs `load` against `proxy`, with the CPU the proxy and the emulator used meanwhile. */
export async function measured(
  bench: Bench,
  proxy: ProxyUnderTest,
  load: () => Promise<LoadResult>,
): Promise<UnaryRun> {
  const cpu0 = cpuMs(proxy.process.pid);
  const emu0 = cpuMs(bench.emulator.pid);
  const r = await load();
  const cpu = cpuMs(proxy.process.pid) - cpu0;
  const emu = cpuMs(bench.emulator.pid) - emu0;
  return {
    ...r,
    cpuMsPerRequest: cpu / Math.max(1, r.requests),
    emulatorCpuMsPerRequest: emu / Math.max(1, r.requests),
  };
}

async function sideBySide(
  bench: Bench,
  name: string,
  concurrency: number,
  pair: readonly [ProxyUnderTest, ProxyUnderTest],
  load: (proxy: ProxyUnderTest, seconds: number) => Promise<LoadResult>,
): Promise<UnaryScenario> {
  const [baseline, gateway] = pair;
  const fresh = bench.fresh === true && pair.every((p) => p.restart !== undefined);
  for (const proxy of pair) await load(proxy, bench.warmupSeconds);
  const runs: Record<string, UnaryRun[]> = { [baseline.name]: [], [gateway.name]: [] };
  for (let rep = 0; rep < bench.reps; rep++) {
    if (fresh && rep > 0) {
      for (const proxy of pair) await proxy.restart?.();
      for (const proxy of pair) await load(proxy, bench.warmupSeconds);
    }
    for (const proxy of alternate(pair, rep)) {
      const r = await measured(bench, proxy, () => load(proxy, bench.seconds));
      runs[proxy.name]?.push(r);
      bench.log(
        `  ${name} c=${concurrency} ${proxy.name}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50Ms?.toFixed(3) ?? "-"} ms, ${(r.cpuMsPerRequest * 1000).toFixed(0)} µs CPU/req, ${r.errors} errors`,
      );
    }
  }
  const g = runs[gateway.name] as UnaryRun[];
  const b = runs[baseline.name] as UnaryRun[];
  const pairs = g.map((run, i) => [run, b[i] as UnaryRun] as const);
  const scenario: UnaryScenario = {
    name,
    concurrency,
    runs,
    throughputRatio: spread(pairs.map(([x, y]) => x.rps / y.rps)),
    cpuRatio: spread(pairs.map(([x, y]) => x.cpuMsPerRequest / y.cpuMsPerRequest)),
  };
  if (g[0]?.p50Ms !== undefined) {
    scenario.addedP50Ms = spread(pairs.map(([x, y]) => (x.p50Ms ?? 0) - (y.p50Ms ?? 0)));
  }
  return scenario;
}

/** The body of the Responses scenario: the echo bot, one short string input. */
export const responsesBody = JSON.stringify({ model: "coze-echo", input: "Hello" });

/**
 * `POST /v1/responses`, non-stream, through wrk: the gateway's Responses door against the bare
 * undici hop answering the same request in the same shape.
 */
export function responsesUnary(
  bench: Bench,
  concurrency: number,
  pair: readonly [ProxyUnderTest, ProxyUnderTest] = [bench.bareUndici, bench.gateway],
): Promise<UnaryScenario> {
  return sideBySide(bench, "responses", concurrency, pair, (proxy, seconds) =>
    wrk({
      url: `${proxy.url}/v1/responses`,
      key: bench.key,
      body: responsesBody,
      connections: concurrency,
      seconds,
      dir: bench.dir,
    }),
  );
}

/** The body of the streamed Responses scenario: the non-stream one with `stream: true`. */
export const responsesStreamBody = JSON.stringify({
  model: "coze-echo",
  input: "Hello",
  stream: true,
});

/**
 * `POST /v1/responses` with `stream: true`, through wrk (each request read to the end of its
 * event stream): the gateway's Responses events against the bare undici hop writing the same
 * event sequence.
 */
export async function responsesStream(
  bench: Bench,
  concurrency: number,
  pair: readonly [ProxyUnderTest, ProxyUnderTest] = [bench.bareUndici, bench.gateway],
): Promise<UnaryScenario> {
  // wrk counts any 200 as a success: first make sure both streams carry the whole sequence.
  const agent = new Agent({ keepAlive: false });
  for (const proxy of pair) {
    const s = await streamCompletion({
      url: proxy.url,
      key: bench.key,
      body: JSON.parse(responsesStreamBody) as Record<string, unknown>,
      agent,
      shape: responsesShape,
    });
    const framing = s.framing.join(",");
    if (
      !s.done ||
      s.sequenceErrors > 0 ||
      s.texts.join("") !== "You said: Hello" ||
      framing !== responsesShape.framing?.join(",")
    ) {
      agent.destroy();
      throw new Error(
        `${proxy.name}: the streamed response is not the Responses event sequence (status ${s.status}, events ${framing}, ${s.sequenceErrors} sequence gaps, text ${JSON.stringify(s.texts.join(""))})`,
      );
    }
  }
  agent.destroy();
  return sideBySide(bench, "responses-stream", concurrency, pair, (proxy, seconds) =>
    wrk({
      url: `${proxy.url}/v1/responses`,
      key: bench.key,
      body: responsesStreamBody,
      connections: concurrency,
      seconds,
      dir: bench.dir,
    }),
  );
}

/**
 * REST chat with `stream: true` through wrk, each event stream read to its end: a reference for
 * the streamed Responses scenario (the same stream path under Chat Completions chunks), run only
 * when asked for (`--only=rest-stream`) and judged against no target.
 */
export function restStream(
  bench: Bench,
  concurrency: number,
  pair: readonly [ProxyUnderTest, ProxyUnderTest] = [bench.bareUndici, bench.gateway],
): Promise<UnaryScenario> {
  const body = JSON.stringify({ ...(JSON.parse(restBody) as object), stream: true });
  return sideBySide(bench, "rest-stream", concurrency, pair, (proxy, seconds) =>
    wrk({
      url: `${proxy.url}/v1/chat/completions`,
      key: bench.key,
      body,
      connections: concurrency,
      seconds,
      dir: bench.dir,
    }),
  );
}

/** A load of REST non-stream chats through wrk with `concurrency` connections. */
export function restLoad(
  bench: Bench,
  concurrency: number,
): (proxy: ProxyUnderTest, seconds: number) => Promise<LoadResult> {
  return (proxy, seconds) =>
    wrk({
      url: `${proxy.url}/v1/chat/completions`,
      key: proxy.key ?? bench.key,
      body: restBody,
      connections: concurrency,
      seconds,
      dir: bench.dir,
    });
}

/** REST non-stream chat through wrk: the gateway against the bare undici hop. */
export function restUnary(
  bench: Bench,
  concurrency: number,
  pair: readonly [ProxyUnderTest, ProxyUnderTest] = [bench.bareUndici, bench.gateway],
): Promise<UnaryScenario> {
  return sideBySide(bench, "rest", concurrency, pair, restLoad(bench, concurrency));
}

/** The binary Connect body of `ChatService.Chat` for the echo bot. */
export function connectBody(): Uint8Array {
  return toBinary(
    ChatRequestSchema,
    create(ChatRequestSchema, {
      model: "coze-echo",
      messages: [create(ChatMessageSchema, { role: Role.USER, content: "Hello" })],
    }),
  );
}

/**
 * Connect unary `ChatService.Chat` (binary protobuf) over h2c through h2load: the gateway
 * against the bare connect-node hop; `streams` concurrent requests on each of `clients`
 * connections.
 */
export function connectUnary(
  bench: Bench,
  clients: number,
  streams: number,
  pair: readonly [ProxyUnderTest, ProxyUnderTest] = [bench.bareConnect, bench.gateway],
): Promise<UnaryScenario> {
  return sideBySide(
    bench,
    "connect",
    clients * streams,
    pair,
    connectLoad(bench, clients, streams),
  );
}

/**
 * A load of Connect unary chats through h2load: `streams` concurrent requests on each of
 * `clients` connections.
 */
export function connectLoad(
  bench: Bench,
  clients: number,
  streams: number,
  warmUpSeconds = 1,
): (proxy: ProxyUnderTest, seconds: number) => Promise<LoadResult> {
  const body = connectBody();
  return (proxy, seconds) =>
    h2load({
      url: `${proxy.url}/cozegateway.v1.ChatService/Chat`,
      headers: {
        "content-type": "application/proto",
        "connect-protocol-version": "1",
        authorization: `Bearer ${proxy.key ?? bench.key}`,
      },
      body,
      clients,
      streams,
      seconds,
      warmUpSeconds,
      dir: bench.dir,
    });
}
