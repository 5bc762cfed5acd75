import { Agent } from "node:http";
import {
  alternate,
  type Bench,
  nsToMs,
  type ProxyUnderTest,
  type RecordedStream,
  recordStreams,
  takeStreams,
} from "../lib/context.js";
import { sleep } from "../lib/proc.js";
import {
  chatShape,
  type StreamSample,
  type StreamShape,
  streamCompletion,
} from "../lib/sse-client.js";
import { quantile, type Spread, spread } from "../lib/stats.js";

/** Words of the user text: the slow bot answers `You said: <text>. <18 more words>`, one delta a word. */
const userWords = 180;
const userText = Array.from({ length: userWords }, (_, i) => `w${i}`).join(" ");
/** The deltas the emulator's slow bot sends for `userText`, in order (see src/emulator/bots.ts). */
export const expectedDeltas =
  `You said: ${userText}. This answer arrives slowly, one word at a time, so that cancellation and client disconnects can be observed.`.split(
    /(?<= )/,
  );

/** One proxy's figures in one repetition. */
export interface StreamRep {
  streams: number;
  /** Median time to first byte over the repetition's streams, ms. */
  ttfbMs: number;
  /** Median, p99 and max per-event lag (client arrival − emulator send) over all events, ms. */
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /**
   * Streams whose content chunks were exactly the upstream deltas, one each, in order, ended as
   * the surface ends a stream (and, for the Responses API, framed by its events and numbered
   * without a gap).
   */
  exact: number;
  /** Chunks that arrived only after the next upstream delta had been sent (held back). */
  held: number;
  /** Client reads that carried more than one content chunk. */
  coalescedReads: number;
  events: number;
}

/** The streaming scenario: per proxy per repetition, and the added figures per repetition. */
export interface StreamScenario {
  /** The surface streamed: `chat` (absent in results written before there were two) or `responses`. */
  surface?: string;
  deltas: number;
  deltaMs: number;
  concurrency: number;
  reps: Record<string, StreamRep[]>;
  /** gateway − baseline median TTFB, per repetition, ms. */
  addedTtfbMs: Spread;
  /** gateway − baseline median per-event lag, per repetition, ms. */
  addedLagP50Ms: Spread;
}

function analyse(
  samples: StreamSample[],
  recorded: Map<string, RecordedStream>,
  shape: StreamShape,
): StreamRep {
  const ttfb: number[] = [];
  const lags: number[] = [];
  let exact = 0;
  let held = 0;
  let coalesced = 0;
  for (const s of samples) {
    ttfb.push(nsToMs(s.firstByteAt - s.sentAt));
    coalesced += s.coalescedReads;
    const rec = recorded.get(s.conversationId);
    if (!rec) throw new Error(`no emulator record for conversation ${s.conversationId}`);
    const sends = rec.deltas.map(BigInt);
    const same =
      s.done &&
      s.sequenceErrors === 0 &&
      (shape.framing === undefined || sameList(s.framing, shape.framing)) &&
      sends.length === expectedDeltas.length &&
      s.texts.length === expectedDeltas.length &&
      s.texts.every((t, i) => t === expectedDeltas[i]);
    if (same) exact++;
    const n = Math.min(sends.length, s.arrivals.length);
    for (let i = 0; i < n; i++) {
      const arrival = s.arrivals[i] as bigint;
      lags.push(nsToMs(arrival - (sends[i] as bigint)));
      const next = sends[i + 1];
      if (next !== undefined && arrival > next) held++;
    }
  }
  return {
    streams: samples.length,
    ttfbMs: quantile(ttfb, 0.5),
    lagP50Ms: quantile(lags, 0.5),
    lagP99Ms: quantile(lags, 0.99),
    lagMaxMs: Math.max(...lags),
    exact,
    held,
    coalescedReads: coalesced,
    events: lags.length,
  };
}

const sameList = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Streaming (issue #6): the slow bot's 200 deltas, `deltaMs` apart, streamed one at a time
 * (concurrency 1, keep-alive) through the bare undici hop and the gateway, alternating, as Chat
 * Completions chunks or (`shape: responsesShape`) Responses API events. The emulator host notes
 * when it writes each delta; the client notes when each content chunk arrives; both on
 * CLOCK_MONOTONIC. A warm-up stream per proxy first.
 */
export async function streaming(
  bench: Bench,
  options: { streamsPerRep: number; deltaMs: number; shape?: StreamShape },
): Promise<StreamScenario> {
  const shape = options.shape ?? chatShape;
  const pair = [bench.bareUndici, bench.gateway] as const;
  const agents = new Map<ProxyUnderTest, Agent>(
    pair.map((p) => [p, new Agent({ keepAlive: true, maxSockets: 1 })]),
  );
  const body = shape.body("coze-slow", userText);
  const one = (proxy: ProxyUnderTest) =>
    streamCompletion({
      url: proxy.url,
      key: bench.key,
      body,
      agent: agents.get(proxy) as Agent,
      shape,
    });
  await recordStreams(bench, true);
  for (const proxy of pair) await one(proxy);
  const reps: Record<string, StreamRep[]> = { [pair[0].name]: [], [pair[1].name]: [] };
  for (let rep = 0; rep < bench.reps; rep++) {
    const samples = new Map<ProxyUnderTest, StreamSample[]>(pair.map((p) => [p, []]));
    for (let i = 0; i < options.streamsPerRep; i++) {
      for (const proxy of alternate(pair, rep + i)) {
        samples.get(proxy)?.push(await one(proxy));
      }
    }
    // The emulator notes a stream once its response closed; the client may be a little ahead.
    const recorded = new Map<string, RecordedStream>();
    const wanted = [...samples.values()].flat().map((s) => s.conversationId);
    for (let tries = 0; tries < 100 && !wanted.every((c) => recorded.has(c)); tries++) {
      for (const r of await takeStreams(bench)) recorded.set(r.conversationId, r);
      if (!wanted.every((c) => recorded.has(c))) await sleep(20);
    }
    for (const proxy of pair) {
      const r = analyse(samples.get(proxy) as StreamSample[], recorded, shape);
      reps[proxy.name]?.push(r);
      bench.log(
        `  ${shape.name} stream ${proxy.name}: TTFB ${r.ttfbMs.toFixed(3)} ms, lag p50 ${r.lagP50Ms.toFixed(3)} / p99 ${r.lagP99Ms.toFixed(3)} / max ${r.lagMaxMs.toFixed(3)} ms, exact ${r.exact}/${r.streams}, held ${r.held}, coalesced reads ${r.coalescedReads}`,
      );
    }
  }
  await recordStreams(bench, false);
  for (const agent of agents.values()) agent.destroy();
  const g = reps[bench.gateway.name] as StreamRep[];
  const b = reps[bench.bareUndici.name] as StreamRep[];
  return {
    surface: shape.name,
    deltas: expectedDeltas.length,
    deltaMs: options.deltaMs,
    concurrency: 1,
    reps,
    addedTtfbMs: spread(g.map((x, i) => x.ttfbMs - (b[i] as StreamRep).ttfbMs)),
    addedLagP50Ms: spread(g.map((x, i) => x.lagP50Ms - (b[i] as StreamRep).lagP50Ms)),
  };
}
