import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Spread } from "./lib/stats.js";
import type { Amplification } from "./scenarios/amplification.js";
import type { LimiterCost } from "./scenarios/limiter-cost.js";
import type { LimitsScenario } from "./scenarios/limits.js";
import type { HoldResult, MemoryScenario } from "./scenarios/memory.js";
import type { StreamScenario } from "./scenarios/stream.js";
import type { UnaryScenario } from "./scenarios/unary.js";

/** Everything one `npm run bench` measured. */
export interface Results {
  date: string;
  machine: Record<string, string | number>;
  settings: { seconds: number; warmupSeconds: number; reps: number };
  rest: UnaryScenario[];
  /** `POST /v1/responses`, non-stream; absent in results written before the scenario existed. */
  responses?: UnaryScenario[];
  /** `POST /v1/responses` with `stream: true`, through wrk; absent before the scenario existed. */
  responsesStream?: UnaryScenario[];
  /** REST chat with `stream: true` through wrk: a reference without a target, only when asked for. */
  restStream?: UnaryScenario[];
  connect: UnaryScenario[];
  /** Issue 15: the gateway without limits, limited in memory and on Redis; absent before it. */
  limits?: LimitsScenario[];
  /** The limiter's own CPU per request, apart from the gateway; with `limits`. */
  limiterCost?: LimiterCost;
  amplification?: Amplification;
  /** The streaming lag scenario, Chat Completions. */
  stream?: StreamScenario;
  /** The streaming lag scenario, Responses API events; absent before the scenario existed. */
  responsesStreaming?: StreamScenario;
  memory?: MemoryScenario;
  /** Token requests the emulator saw since the amplification run reset its counters. */
  tokenRequests?: number;
  elapsedSeconds?: number;
}

interface Target {
  target: string;
  measured: string;
  limit: string;
  pass: boolean;
}

/** Everything below this line in BENCHMARKS.md is written by hand and kept by the bench. */
export const handWrittenMarker = "<!-- Hand-written below this line; npm run bench keeps it. -->";

const f = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");
const pct = (n: number) => `${f(n * 100, 0)}%`;
const range = (s: Spread, fmt: (n: number) => string) =>
  `${fmt(s.median)} (${fmt(s.min)} – ${fmt(s.max)})`;
const kib = (bytes: number) => `${f(bytes / 1024, 1)} KiB`;
const mib = (bytes: number) => `${f(bytes / 1024 / 1024, 1)} MiB`;

/**
 * Throughput (above c=1) and CPU per request of a wrk scenario against the bare hop; `name`
 * says which (`REST non-stream`, `Responses stream`, …).
 */
function hopTargets(name: string, s: UnaryScenario): Target[] {
  const out: Target[] = [];
  if (s.concurrency !== 1) {
    out.push({
      target: `${name} throughput, c=${s.concurrency}`,
      measured: range(s.throughputRatio, pct),
      limit: "≥ 70% of bare undici hop",
      pass: s.throughputRatio.median >= 0.7,
    });
  }
  out.push({
    target: `${name} CPU per request, c=${s.concurrency}`,
    measured: `${range(s.cpuRatio, (n) => `${f(n)}×`)}`,
    limit: "≤ 1.5× bare undici hop",
    pass: s.cpuRatio.median <= 1.5,
  });
  return out;
}

/**
 * The streaming lag scenario's targets: added TTFB and per-event lag against the bare hop, and
 * every upstream delta one `unit`, in order, flushed as it arrives.
 */
function streamTargets(name: string, s: StreamScenario, unit: string): Target[] {
  const g = s.reps.gateway ?? [];
  const streams = g.reduce((n, x) => n + x.streams, 0);
  const exact = g.reduce((n, x) => n + x.exact, 0);
  const held = g.reduce((n, x) => n + x.held, 0);
  const coalesced = g.reduce((n, x) => n + x.coalescedReads, 0);
  const events = g.reduce((n, x) => n + x.events, 0);
  return [
    {
      target: `${name} added time to first byte (${s.deltas} events, ${s.deltaMs} ms apart)`,
      measured: `${range(s.addedTtfbMs, (n) => f(n, 3))} ms`,
      limit: "≤ 1 ms",
      pass: s.addedTtfbMs.median <= 1,
    },
    {
      target: `${name} added per-event lag, median`,
      measured: `${range(s.addedLagP50Ms, (n) => f(n, 3))} ms`,
      limit: "≤ 0.3 ms",
      pass: s.addedLagP50Ms.median <= 0.3,
    },
    {
      target: `Every upstream delta is one ${unit}, in order, flushed as it arrives`,
      measured: `${exact}/${streams} streams exact; ${coalesced} client reads held two chunks; ${held} of ${events} chunks arrived after the next delta was sent`,
      limit: "all exact, no two chunks in one read",
      pass: streams > 0 && exact === streams && coalesced === 0,
    },
  ];
}

/** The most a limited gateway may cost per request over the same build without limits. */
const limitCeilings: Record<string, { store: string; ceiling: number }> = {
  "limits-memory": { store: "in memory", ceiling: 1.05 },
  "limits-redis": { store: "on Redis", ceiling: 1.15 },
};

/**
 * Issue 15's targets of one limits scenario: CPU per request of each limited gateway's limited
 * key over its key without limits in the same process (over the gateway without limits in results
 * from before that), and at most one Redis command (one EVALSHA batch) per request.
 */
function limitTargets(s: LimitsScenario): Target[] {
  const door = s.name === "connect" ? "Connect unary" : "REST non-stream";
  const out: Target[] = [];
  for (const [name, c] of Object.entries(limitCeilings)) {
    const across = s.cpuRatio[name];
    const same = s.sameProcessRatio?.[name];
    const judged = same ?? across;
    if (judged === undefined) continue;
    const measured = same
      ? `${range(same, (n) => `${f(n)}×`)} over the key without limits; the gateway without limits: ${across ? range(across, (n) => `${f(n)}×`) : "–"}`
      : range(judged, (n) => `${f(n)}×`);
    out.push({
      target: `Limits ${c.store}: ${door} CPU per request, c=${s.concurrency}`,
      measured,
      limit: `≤ ${f(c.ceiling)}× without limits`,
      pass: judged.median <= c.ceiling,
    });
  }
  const redis = s.redis;
  if (redis) {
    // A run's edges: up to `concurrency` requests admitted in one window and sent to Coze in the
    // next, and the last requests' counts, sent alone after the run.
    const slack = s.concurrency + 1;
    const batchesOk = redis.batches.every((b, i) => b <= (redis.requests[i] ?? 0) + slack);
    const { commands, requests } = redis.sent;
    const scripts = (commands.evalsha ?? 0) + (commands.eval ?? 0);
    const others = Object.entries(commands).filter(([k]) => k !== "evalsha" && k !== "eval");
    out.push({
      target: `Limits on Redis: ${door} round trips to Redis per request, c=${s.concurrency}`,
      measured: `${range(redis.batchesPerRequest, (n) => f(n, 3))} scripts per request; under MONITOR ${scripts} scripts${others.map(([k, n]) => `, ${n} ${k}`).join("")} for ${requests} requests`,
      limit: "≤ 1 (one EVALSHA), nothing else sent",
      pass: batchesOk && others.length === 0 && scripts <= requests + slack,
    });
  }
  return out;
}

/** The issue's targets, each judged on the median over repetitions. */
export function targets(r: Results): Target[] {
  const out: Target[] = [];
  for (const s of r.rest) {
    out.push(...hopTargets("REST non-stream", s));
    if (s.concurrency === 1 && s.addedP50Ms) {
      out.push({
        target: "REST non-stream added median latency, c=1",
        measured: `${range(s.addedP50Ms, (n) => f(n, 3))} ms`,
        limit: "≤ 0.5 ms",
        pass: s.addedP50Ms.median <= 0.5,
      });
    }
  }
  for (const s of r.responses ?? []) out.push(...hopTargets("Responses non-stream", s));
  // Streams are judged as Chat Completions streams are: by the lag scenario's targets below.
  // Their CPU and throughput under wrk (`responses-stream`, `rest-stream`) are figures to read
  // in the table, without a target: a stream's cost is its events', which no unary hop has.
  for (const s of r.limits ?? []) out.push(...limitTargets(s));
  const a = r.amplification;
  if (a) {
    out.push({
      target: "Upstream amplification, bot chat (REST, REST stream, Connect)",
      measured: `${f(a.perRequest, 3)} upstream calls per request; ${a.wrongAnswers} wrong answers`,
      limit: "= 1.0",
      pass: a.perRequest === 1 && a.wrongAnswers === 0,
    });
  }
  if (r.stream) out.push(...streamTargets("Streaming", r.stream, "downstream chunk"));
  if (r.responsesStreaming) {
    out.push(
      ...streamTargets(
        "Responses streaming",
        r.responsesStreaming,
        "`response.output_text.delta` event (events framed and numbered)",
      ),
    );
  }
  for (const c of r.connect) {
    out.push({
      target: `Connect unary throughput, ${c.concurrency} concurrent`,
      measured: range(c.throughputRatio, pct),
      limit: "≥ 70% of bare connect-node hop",
      pass: c.throughputRatio.median >= 0.7,
    });
  }
  const m = r.memory;
  const hold = m?.hold.gateway;
  if (m && hold) {
    out.push({
      target: `RSS per open stream (${hold.streams} REST streams held)`,
      measured: kib(hold.rssPerStreamBytes),
      limit: "≤ 64 KiB",
      pass: hold.rssPerStreamBytes <= 64 * 1024,
    });
    out.push({
      target: "Heap after 1000 streams and an abort storm (idle, after a full GC)",
      measured: `${mib(m.heapAfterBytes)} vs ${mib(m.heapBeforeBytes)} before (${pct(m.heapRatio)}); round 1 from cold: ${mib(m.heapColdBytes)} → ${mib(m.heapBeforeBytes)}`,
      limit: "≤ 110% of before",
      pass: m.heapRatio <= 1.1,
    });
    const rounds = [m.hold["gateway (round 1)"], hold].filter((x): x is HoldResult => !!x);
    const closed = rounds.reduce((n, x) => n + x.closedWithin1s, 0);
    const total = rounds.reduce((n, x) => n + x.streams, 0);
    const slowest = Math.max(...rounds.map((x) => x.closeLagMaxMs));
    out.push({
      target: "Upstream streams closed within 1 s of their client going away",
      measured: `${closed}/${total} (two storms); slowest ${f(slowest, 1)} ms, median ${f(hold.closeLagP50Ms, 1)} ms`,
      limit: "all",
      pass: total > 0 && closed === total,
    });
  }
  return out;
}

function unaryTable(scenarios: Pick<UnaryScenario, "name" | "concurrency" | "runs">[]): string {
  const rows = [
    "| scenario | proxy | req/s | p50 ms | p99 ms | CPU µs/req | emulator CPU µs/req | errors |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const s of scenarios) {
    for (const [proxy, runs] of Object.entries(s.runs)) {
      const med = (pick: (x: (typeof runs)[number]) => number | undefined) => {
        const v = runs.map(pick).filter((x): x is number => x !== undefined);
        if (v.length === 0) return "–";
        const sorted = [...v].sort((a, b) => a - b);
        const mid = sorted[Math.floor((sorted.length - 1) / 2)] as number;
        const med = sorted.length % 2 ? mid : (mid + (sorted[sorted.length / 2] as number)) / 2;
        return `${f(med, med >= 100 ? 0 : 3)} (${f(sorted[0] as number, med >= 100 ? 0 : 3)}–${f(sorted.at(-1) as number, med >= 100 ? 0 : 3)})`;
      };
      rows.push(
        `| ${s.name} c=${s.concurrency} | ${proxy} | ${med((x) => x.rps)} | ${med((x) => x.p50Ms)} | ${med((x) => x.p99Ms)} | ${med((x) => x.cpuMsPerRequest * 1000)} | ${med((x) => x.emulatorCpuMsPerRequest * 1000)} | ${runs.reduce((n, x) => n + x.errors, 0)} |`,
      );
    }
  }
  return rows.join("\n");
}

function streamTable(s: StreamScenario): string {
  const rows = [
    "| proxy | rep | streams | TTFB ms | lag p50 ms | lag p99 ms | lag max ms | exact | held | coalesced reads |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const [proxy, reps] of Object.entries(s.reps)) {
    reps.forEach((r, i) => {
      rows.push(
        `| ${proxy} | ${i + 1} | ${r.streams} | ${f(r.ttfbMs, 3)} | ${f(r.lagP50Ms, 3)} | ${f(r.lagP99Ms, 3)} | ${f(r.lagMaxMs, 3)} | ${r.exact} | ${r.held} | ${r.coalescedReads} |`,
      );
    });
  }
  return rows.join("\n");
}

function memoryTable(m: MemoryScenario): string {
  const rows = [
    "| proxy | streams held | RSS before | RSS with all open | per stream | closed ≤ 1 s | close lag p50 / max ms |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const [proxy, h] of Object.entries(m.hold)) {
    rows.push(
      `| ${proxy} | ${h.streams} | ${mib(h.rssBeforeBytes)} | ${mib(h.rssOpenBytes)} | ${kib(h.rssPerStreamBytes)} | ${h.closedWithin1s}/${h.streams} | ${f(h.closeLagP50Ms, 1)} / ${f(h.closeLagMaxMs, 1)} |`,
    );
  }
  return rows.join("\n");
}

/** Renders the generated part of BENCHMARKS.md. */
export function renderMarkdown(r: Results): string {
  const m = r.machine;
  const t = targets(r);
  const lines = [
    "# Benchmarks",
    "",
    `Written by \`npm run bench\` on ${r.date.slice(0, 10)} (${f(r.elapsedSeconds ?? 0, 0)} s). Every figure that is judged is a ratio or a difference against a baseline measured side by side in the same run; absolute numbers on a shared machine are noise. Medians over ${r.settings.reps} repetitions of ${r.settings.seconds} s after a ${r.settings.warmupSeconds} s warm-up, with (min – max).`,
    "",
    `Machine: ${m.cores} cores (${m.cpu}), Linux ${m.kernel}; Node ${m.node}, undici ${m.undici}, @connectrpc/connect ${m.connect}, @connectrpc/connect-node ${m.connectNode}; ${m.wrk}; ${m.h2load}.`,
    "",
    "## Targets (issue #6)",
    "",
    "| target | measured | limit | result |",
    "| --- | --- | --- | --- |",
    ...t.map(
      (x) => `| ${x.target} | ${x.measured} | ${x.limit} | ${x.pass ? "PASS" : "**FAIL**"} |`,
    ),
    "",
    "## REST non-stream chat, Responses and Connect unary",
    "",
    "`rest`: wrk, one thread, HTTP/1.1 keep-alive, c connections, `POST /v1/chat/completions` for the echo bot; `responses`: the same for `POST /v1/responses` with a string input; `responses-stream` (and `rest-stream`, when asked for): the same with `stream: true`, each event stream read to its end; `connect`: h2load over h2c, `ChatService/Chat` in binary Connect. CPU is the proxy process's utime+stime from `/proc/<pid>/stat` over the run, per successful request.",
    "",
    unaryTable([
      ...r.rest,
      ...(r.restStream ?? []),
      ...(r.responses ?? []),
      ...(r.responsesStream ?? []),
      ...r.connect,
    ]),
    "",
  ];
  if (r.limits && r.limits.length > 0) {
    const redis = r.limits
      .filter((s) => s.redis)
      .map(
        (s) =>
          `${s.name} c=${s.concurrency}: ${f(s.redis?.batchesPerRequest.median ?? 0, 3)} script calls and ${f((s.redis?.cpuMsPerRequest.median ?? 0) * 1000, 0)} µs of Redis CPU per request`,
      );
    lines.push(
      "## Limits on and off (issue 15)",
      "",
      `Three gateways of one build and one config, started afresh for each repetition and each warmed up, then run in one-second slices in turn (ABC…, CBA… in the next repetition): \`limits-off\` (the bench key without limits), \`limits-memory\` (the key with every limit, each far from refusing: requests and tokens per minute, tokens per day, a monthly quota, streams at once; counters in memory) and \`limits-redis\` (the same on a \`redis-server\` of the bench's own, \`state.store: redis\`). Every gateway also holds a second key that never has limits; \`limits-memory-plain\` and \`limits-redis-plain\` are the limited gateways' processes called with that key, in slices of their own. The targets hold each limited key against the key without limits of its own process, where the luck of the process as a whole (10 % to 15 % from one fresh process to the next) cancels, though not that of each path through it; the ratio over \`limits-off\` is beside it. Usage metering runs in all of them. CPU is the gateway process's alone.${redis.length > 0 ? ` Redis: ${redis.join("; ")}.` : " No Redis column: `redis-server` is not installed."}`,
      "",
      unaryTable(r.limits),
      "",
    );
    const c = r.limiterCost;
    if (c) {
      const redisCost =
        c.redisC1 === undefined
          ? ""
          : `, on Redis ${f(c.redisC1, 1)} µs one request at a time and ${f(c.redisC16 ?? Number.NaN, 1)} µs sixteen at a time`;
      lines.push(
        `The limiter alone (\`admit\` and \`finish\` of the bench key's limits in the harness process, no HTTP; the best of five rounds): ${f(c.memory, 1)} µs of CPU per request in memory${redisCost}.`,
        "",
      );
    }
  }
  if (r.stream) {
    lines.push(
      "## Streaming",
      "",
      `The slow bot's ${r.stream.deltas} deltas, ${r.stream.deltaMs} ms apart, one stream at a time; lag is the client's arrival time of a content chunk minus the time the emulator wrote that delta (both CLOCK_MONOTONIC). "held": chunks that arrived after the emulator had already written the next delta (scheduling noise shows here too); "coalesced reads": client reads that brought two content chunks at once, which is what a proxy holding a chunk back until the next one produces.`,
      "",
      streamTable(r.stream),
      "",
    );
  }
  if (r.responsesStreaming) {
    lines.push(
      "## Streaming, Responses API",
      "",
      "The same, through `POST /v1/responses` with `stream: true`: a content chunk is a `response.output_text.delta` event; a stream is exact when its deltas are the upstream ones, its events are framed as the SDKs expect (`response.created` … `response.completed`) and their `sequence_number`s have no gap.",
      "",
      streamTable(r.responsesStreaming),
      "",
    );
  }
  if (r.amplification) {
    const a = r.amplification;
    lines.push(
      "## Upstream calls",
      "",
      `${a.requests.rest} REST non-stream, ${a.requests.restStream} REST stream and ${a.requests.connect} Connect unary bot chats through the gateway caused these emulator calls: \`${JSON.stringify(a.calls)}\`. Token requests over the rest of the run: ${r.tokenRequests ?? "n/a"}.`,
      "",
    );
  }
  if (r.memory) {
    lines.push(
      "## Memory",
      "",
      `After a warm-up, two rounds of 1000 REST streams run to completion (100 at a time) and 1000 more held open (the emulator stalls each after its first delta) and all aborted at once; ${r.memory.completedOk}/${r.memory.completedStreams} completed streams ended with \`[DONE]\` and the whole answer. Gateway heap when idle, after a full GC: ${mib(r.memory.heapColdBytes)} after the warm-up, ${mib(r.memory.heapBeforeBytes)} after round 1 (the baseline), ${mib(r.memory.heapAfterBytes)} after round 2. Round 1 raises bounded high-water marks once (JIT code of the abort paths, the undici pool's Client objects and Node's free list of HTTP parsers, each capped near 1000; see the notes below); round 2 shows whether anything is kept per stream.`,
      "",
      memoryTable(r.memory),
      "",
    );
  }
  return lines.join("\n");
}

/** Writes bench/results.json and BENCHMARKS.md (keeping its hand-written part). */
export function writeReport(root: string, r: Results): string[] {
  const json = join(root, "bench", "results.json");
  writeFileSync(json, `${JSON.stringify({ ...r, targets: targets(r) }, null, 2)}\n`);
  const md = join(root, "BENCHMARKS.md");
  let kept = `${handWrittenMarker}\n`;
  if (existsSync(md)) {
    const old = readFileSync(md, "utf8");
    const at = old.indexOf(handWrittenMarker);
    if (at !== -1) kept = old.slice(at);
  }
  writeFileSync(md, `${renderMarkdown(r)}\n${kept}`);
  return [json, md];
}
