// `npm run bench`: starts the emulator, the gateway and two baselines as separate processes,
// drives them with wrk, h2load and a streaming client from this process, and writes
// bench/results.json and BENCHMARKS.md. See BENCHMARKS.md for the method.

import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parsePrivateKey } from "../src/config/index.js";
import { createPools } from "../src/coze/pools.js";
import { createTokenCache } from "../src/coze/token-cache.js";
import type { GeneratedApp } from "../src/emulator/index.js";
import { catalog } from "../src/emulator/index.js";
import { restartable, writeCompareConfig } from "./lib/compare.js";
import type { Bench, ProxyUnderTest } from "./lib/context.js";
import { emulatorStats } from "./lib/context.js";
import { freePort, nextMessage, probeImport, startNode, waitForHttp } from "./lib/proc.js";
import { responsesShape } from "./lib/sse-client.js";
import { ensureTools } from "./lib/tools.js";
import { type Results, targets, writeReport } from "./report.js";
import { amplification } from "./scenarios/amplification.js";
import { type LimitGateways, startLimitGateways } from "./scenarios/limit-gateways.js";
import { limiterCost } from "./scenarios/limiter-cost.js";
import { limitScenarios } from "./scenarios/limits.js";
import { memory } from "./scenarios/memory.js";
import { streaming } from "./scenarios/stream.js";
import {
  connectUnary,
  responsesStream,
  responsesUnary,
  restStream,
  restUnary,
  type UnaryScenario,
} from "./scenarios/unary.js";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean" },
    only: { type: "string" },
    reps: { type: "string" },
    seconds: { type: "string" },
    "no-write": { type: "boolean" },
    profile: { type: "boolean" },
    fresh: { type: "boolean" },
    "gateway-main": { type: "string" },
    "compare-main": { type: "string" },
    // The REST concurrencies to run, e.g. --rest-c=16 while iterating on a change.
    "rest-c": { type: "string" },
    // The limits scenario's three gateways all without limits: the spread its ratios sit in.
    "limits-aa": { type: "boolean" },
  },
});
const only = args.only?.split(",");
const wants = (s: string) => only === undefined || only.includes(s);

const root = new URL("../../../", import.meta.url).pathname;
const dist = (p: string) => join(root, "dist", p);

function packageVersion(name: string): string {
  return (
    JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")) as {
      version: string;
    }
  ).version;
}

async function main() {
  const quick = args.quick === true;
  const tools = await ensureTools();
  const dir = mkdtempSync(join(tmpdir(), "coze-bench-"));
  const logFd = (name: string) => openSync(join(dir, `${name}.log`), "w");
  const log = (line: string) => process.stdout.write(`${line}\n`);
  log(`bench: scratch and process logs in ${dir}`);

  const emulator = startNode("emulator", [dist("bench/bench/emulator-host.js")], {
    log: logFd("emulator"),
  });
  const { url: emulatorUrl, app } = await nextMessage<{ url: string; app: GeneratedApp }>(
    emulator.child,
    "ready",
  );

  // The baselines get one access token for the whole run: token management is the gateway's.
  const pools = createPools();
  const token = await createTokenCache({ pools })
    .source({
      baseUrl: emulatorUrl,
      clientId: app.clientId,
      publicKeyId: app.publicKeyId,
      privateKey: parsePrivateKey(app.privateKeyPem),
    })
    .getToken();
  await pools.destroy();

  const key = "bench-key-0123456789abcdef";
  const [gwPort, undiciPort, connectPort] = [await freePort(), await freePort(), await freePort()];
  const config = join(dir, "gateway.json");
  writeFileSync(
    config,
    JSON.stringify({
      // One key holds the memory scenario's 1000 streams: more than the default cap per key.
      server: { host: "127.0.0.1", port: gwPort, max_streams_per_key: 2000 },
      server_secret: randomBytes(32).toString("base64url"),
      api_keys: [{ name: "bench", key }],
      channels: [
        {
          name: "bench",
          base_url: emulatorUrl,
          credentials: {
            client_id: app.clientId,
            public_key_id: app.publicKeyId,
            private_key: app.privateKeyPem,
            default_bot_id: catalog.bots.echo,
          },
          models: ["coze-echo", { name: "coze-slow", bot_id: catalog.bots.slow }],
        },
      ],
    }),
  );
  chmodSync(config, 0o600);
  const measuredArgs = ["--expose-gc", probeImport()];
  const env: NodeJS.ProcessEnv = {
    COZE_GATEWAY_CONFIG: "",
    COZE_GATEWAY_HOST: "",
    COZE_GATEWAY_PORT: "",
    COZE_GATEWAY_CORS_ORIGINS: "",
  };
  // --profile: a V8 CPU profile of the gateway (and of the compared build), written when it exits
  // (see profile-summary.ts).
  const profileArgs = args.profile ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [];
  // --gateway-main: another build of the gateway (e.g. a change under test) in the same harness.
  const startGateway = (name: string, configFile: string) =>
    startNode(
      name,
      [
        ...measuredArgs,
        ...profileArgs,
        args["gateway-main"] ?? dist("main.js"),
        "--config",
        configFile,
      ],
      { env, log: logFd(name) },
    );
  const gatewayProc = startGateway("gateway", config);
  const baselineEnv = {
    BENCH_EMULATOR_URL: emulatorUrl,
    BENCH_TOKEN: token,
  };
  const undiciProc = startNode(
    "bare-undici",
    [...measuredArgs, dist("bench/bench/baselines/bare-undici.js")],
    { env: { ...baselineEnv, BENCH_PORT: String(undiciPort) }, log: logFd("bare-undici") },
  );
  const connectProc = startNode(
    "bare-connect",
    [...measuredArgs, dist("bench/bench/baselines/bare-connect.js")],
    { env: { ...baselineEnv, BENCH_PORT: String(connectPort) }, log: logFd("bare-connect") },
  );
  const gateway: ProxyUnderTest = {
    name: "gateway",
    url: `http://127.0.0.1:${gwPort}`,
    process: gatewayProc,
  };
  const bareUndici: ProxyUnderTest = {
    name: "bare-undici",
    url: `http://127.0.0.1:${undiciPort}`,
    process: undiciProc,
  };
  const bareConnect: ProxyUnderTest = {
    name: "bare-connect",
    url: `http://127.0.0.1:${connectPort}`,
    process: connectProc,
  };
  const all = [gatewayProc, undiciProc, connectProc, emulator];
  // --compare-main: another gateway build as the baseline of the REST and Connect scenarios, side
  // by side with this one in the same run (before/after a change, issue #6's rule for ratios).
  let compare: ProxyUnderTest | undefined;
  const compareMain = args["compare-main"];
  if (compareMain) {
    const port = await freePort();
    const compareConfig = writeCompareConfig(config, dir, port, compareMain);
    const startCompare = () =>
      startNode(
        "gateway-compare",
        [...measuredArgs, ...profileArgs, compareMain, "--config", compareConfig],
        { env, log: logFd("gateway-compare") },
      );
    const proc = startCompare();
    all.push(proc);
    compare = { name: "gateway-compare", url: `http://127.0.0.1:${port}`, process: proc };
    // --fresh: both started afresh for each repetition.
    restartable(compare, startCompare, all);
    restartable(gateway, () => startGateway("gateway", config), all);
  }
  // The limits scenario's own three gateways (off, in memory, on Redis), one build and config.
  let limitGateways: LimitGateways | undefined;
  try {
    if (wants("limits")) {
      limitGateways = await startLimitGateways({
        config,
        dir,
        redisLog: logFd("redis"),
        aa: args["limits-aa"] === true,
        start(name, configFile) {
          const proc = startGateway(name, configFile);
          all.push(proc);
          log(`  ${name}: pid ${proc.pid}`);
          return proc;
        },
        log,
      });
    }
    await waitForHttp(`${gateway.url}/healthz`);
    if (compare) await waitForHttp(`${compare.url}/healthz`);
    await waitForHttp(bareUndici.url);
    await waitForTcp(connectPort);
    const bench: Bench = {
      key,
      emulatorUrl,
      emulator,
      gateway,
      bareUndici,
      bareConnect,
      dir,
      seconds: Number(args.seconds ?? (quick ? 2 : 5)),
      warmupSeconds: quick ? 1 : 3,
      reps: Number(args.reps ?? (quick ? 2 : 3)),
      fresh: args.fresh === true,
      log,
    };
    const started = Date.now();
    const results: Results = {
      date: new Date().toISOString(),
      machine: {
        cores: availableParallelism(),
        cpu: cpus()[0]?.model ?? "unknown",
        kernel: release(),
        node: process.version,
        undici: packageVersion("undici"),
        connectNode: packageVersion("@connectrpc/connect-node"),
        connect: packageVersion("@connectrpc/connect"),
        wrk: tools.wrk,
        h2load: tools.h2load,
      },
      settings: { seconds: bench.seconds, warmupSeconds: bench.warmupSeconds, reps: bench.reps },
      rest: [],
      responses: [],
      connect: [],
    };
    if (wants("rest")) {
      log("REST non-stream chat (wrk, HTTP/1.1): gateway vs bare undici hop");
      const levels = args["rest-c"]?.split(",").map(Number) ?? [1, 16, 64];
      for (const c of levels) {
        results.rest.push(
          await restUnary(bench, c, compare ? [compare, gateway] : [bareUndici, gateway]),
        );
      }
    }
    if (wants("responses")) {
      log("Responses API non-stream (wrk, HTTP/1.1): gateway vs bare undici hop");
      const levels = args["rest-c"]?.split(",").map(Number) ?? [1, 16, 64];
      const pair = compare ? ([compare, gateway] as const) : ([bareUndici, gateway] as const);
      const responses: UnaryScenario[] = [];
      results.responses = responses;
      for (const c of levels) responses.push(await responsesUnary(bench, c, pair));
      log("Responses API stream (wrk, HTTP/1.1, each event stream read to its end)");
      const streamed: UnaryScenario[] = [];
      results.responsesStream = streamed;
      for (const c of levels) streamed.push(await responsesStream(bench, c, pair));
    }
    // A reference for the streamed Responses figures, only when named: it has no target.
    if (only?.includes("rest-stream")) {
      log("REST chat stream (wrk, HTTP/1.1, each event stream read to its end), a reference");
      const levels = args["rest-c"]?.split(",").map(Number) ?? [1, 16, 64];
      const streamed: UnaryScenario[] = [];
      results.restStream = streamed;
      for (const c of levels) {
        streamed.push(
          await restStream(bench, c, compare ? [compare, gateway] : [bareUndici, gateway]),
        );
      }
    }
    if (wants("connect")) {
      log("Connect unary Chat (h2load, h2c): gateway vs bare connect-node hop");
      const pair: [ProxyUnderTest, ProxyUnderTest] = compare
        ? [compare, gateway]
        : [bareConnect, gateway];
      results.connect.push(await connectUnary(bench, 1, 16, pair));
      results.connect.push(await connectUnary(bench, 4, 16, pair));
    }
    if (limitGateways) {
      log(
        "Limits: REST and Connect unary through the gateway without limits, limited in memory, on Redis",
      );
      results.limits = await limitScenarios(bench, limitGateways);
      results.limiterCost = await limiterCost(limitGateways.redisServer);
      log(`  the limiter alone, µs of CPU per request: ${JSON.stringify(results.limiterCost)}`);
    }
    if (wants("amplification")) {
      log("Upstream amplification (counts)");
      results.amplification = await amplification(bench);
      log(`  ${JSON.stringify(results.amplification)}`);
    }
    if (wants("stream")) {
      log("Streaming: 200 deltas 5 ms apart, one stream at a time");
      results.stream = await streaming(bench, { streamsPerRep: quick ? 2 : 4, deltaMs: 5 });
    }
    if (wants("responses")) {
      log("Responses API streaming: 200 deltas 5 ms apart, one stream at a time");
      results.responsesStreaming = await streaming(bench, {
        streamsPerRep: quick ? 2 : 4,
        deltaMs: 5,
        shape: responsesShape,
      });
    }
    if (wants("memory")) {
      log("Memory: 1000 streams, 1000 held open, abort storm");
      results.memory = await memory(bench);
      log(`  ${JSON.stringify(results.memory)}`);
    }
    results.tokenRequests = (await emulatorStats(bench)).tokenRequests;
    results.elapsedSeconds = (Date.now() - started) / 1000;
    if (compare) {
      const compared = [
        ...results.rest,
        ...(results.responses ?? []),
        ...(results.responsesStream ?? []),
        ...(results.restStream ?? []),
        ...results.connect,
      ];
      for (const x of compared) {
        log(
          `compare ${x.name} c=${x.concurrency}: throughput ${(x.throughputRatio.median * 100).toFixed(0)}% of the compared build, CPU per request ${x.cpuRatio.median.toFixed(2)}×`,
        );
      }
    }
    if (!compare) {
      // Printed on every run, so `--no-write` still shows what would be judged.
      for (const t of targets(results)) {
        log(`${t.pass ? "PASS" : "FAIL"} ${t.target}: ${t.measured} (${t.limit})`);
      }
    }
    if (args["no-write"] !== true && !compare) {
      const written = writeReport(root, results);
      log(`bench: wrote ${written.join(", ")} in ${results.elapsedSeconds.toFixed(0)} s`);
    }
  } finally {
    await Promise.all(all.map((p) => p.stop()));
    await limitGateways?.stop();
  }
}

async function waitForTcp(port: number): Promise<void> {
  const { connect } = await import("node:net");
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
