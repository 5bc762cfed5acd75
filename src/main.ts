import { parseArgs } from "node:util";
import { ConfigError, type GatewayConfig, loadConfig } from "./config/index.js";
import { createPools } from "./coze/pools.js";
import { createTokenCache } from "./coze/token-cache.js";
import { type Demo, demoModels, speechRoundTrip, startDemo } from "./demo.js";
import { type Gateway, type Log, startGateway } from "./gateway.js";
import { runKeygen } from "./keygen.js";
import { createObservability, type LogLevel } from "./observability/index.js";

const usage = `Usage: coze-gateway [--config FILE] [--check] [--check-token]
       coze-gateway keygen [--out DIR] [--bits 2048|3072|4096] [--force]   (see keygen --help)

  --config FILE   gateway config (YAML or JSON); also COZE_GATEWAY_CONFIG.
                  Without one, demo mode starts an embedded Coze emulator on loopback.
                  SIGHUP (kill -HUP) reloads it without a restart (docs/deployment.md).
  --check         validate the config and exit (0 valid, 1 invalid)
  --check-token   with --check: also fetch one Coze access token per channel
  --help          this text
`;

const levels = new Set<LogLevel>(["debug", "info", "warn", "error", "silent"]);
const requestedLevel = process.env.COZE_GATEWAY_LOG_LEVEL as LogLevel | undefined;

/**
 * Logs (JSON lines on stderr, level from COZE_GATEWAY_LOG_LEVEL, default info) and metrics of
 * this process; the banner and check results go to stdout.
 */
const observability = createObservability({
  level: requestedLevel && levels.has(requestedLevel) ? requestedLevel : "info",
});
const log: Log = observability.log;

async function main(): Promise<number> {
  if (process.argv[2] === "keygen") {
    return runKeygen(process.argv.slice(3), {
      stdout: (text) => process.stdout.write(text),
      stderr: (text) => process.stderr.write(text),
    });
  }
  let args: ReturnType<typeof parse>;
  try {
    args = parse();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(usage);
    return 0;
  }
  const env = process.env;
  const path = args.config ?? env.COZE_GATEWAY_CONFIG;
  let config: GatewayConfig;
  let demo: Demo | undefined;
  if (path) {
    try {
      config = await loadConfig(path, env);
    } catch (err) {
      if (err instanceof ConfigError) {
        // Every problem of the file, not only the first: one round of fixes for all of them.
        for (const problem of err.all) process.stderr.write(`config error: ${problem.message}\n`);
        return 1;
      }
      throw err;
    }
    for (const warning of config.warnings) log("warn", warning);
    if (args.check) return check(config, args["check-token"] === true);
  } else {
    if (args.check) {
      process.stderr.write("--check needs --config FILE (or COZE_GATEWAY_CONFIG)\n");
      return 2;
    }
    const port = demoPort(env.COZE_GATEWAY_PORT);
    if (port === undefined) {
      const given = JSON.stringify((env.COZE_GATEWAY_PORT ?? "").slice(0, 40));
      process.stderr.write(
        `COZE_GATEWAY_PORT must be an integer from 0 to 65535 (0 picks a free port), not ${given}\n`,
      );
      return 1;
    }
    demo = await startDemo({ host: "127.0.0.1", port });
    config = demo.config;
  }

  // Node ends the process on SIGHUP by default: from here on it asks for a reload instead, one
  // made as soon as the gateway listens when it comes during the start.
  let reloadAsked = false;
  let reload = () => {
    reloadAsked = true;
  };
  process.on("SIGHUP", () => reload());

  let gateway: Gateway;
  try {
    gateway = await startGateway({
      config,
      observability,
      // Demo mode's dynamic names; discovery lists most of them, not workflow-async: ones.
      playgroundModels: demo ? Object.values(demoModels) : undefined,
    });
  } catch (err) {
    await demo?.close();
    // The listener wraps the system error: its code is on the cause.
    const cause = err instanceof Error ? err.cause : undefined;
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    if (code === "EADDRINUSE" || code === "EACCES") {
      process.stderr.write(
        `cannot listen on ${config.server.host}:${config.server.port} (${code}); set server.port or COZE_GATEWAY_PORT\n`,
      );
      return 1;
    }
    throw err;
  }
  if (demo) process.stdout.write(banner(gateway.url, demo, config.server.playground));
  else log("info", "coze-gateway listening", { url: gateway.url, config: config.source });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        log("warn", "second signal: exiting now", { signal });
        resolve(1);
        return;
      }
      stopping = true;
      log("info", "shutting down", { signal, graceMs: config.server.shutdownGraceMs });
      gateway
        .close()
        .then(() => demo?.close())
        .then(
          () => resolve(0),
          (err: unknown) => {
            log("error", "shutdown failed", { error: String((err as Error)?.message ?? err) });
            resolve(1);
          },
        );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    // `kill -HUP`: read the same file (and the same environment) again, check it as --check
    // does, and swap it in without dropping a call; an invalid file keeps the running config.
    reload = () => {
      if (stopping) return;
      if (!path) {
        log("warn", "SIGHUP ignored: demo mode has no config file to reload");
        return;
      }
      void gateway.reload(() => loadConfig(path, env));
    };
    if (reloadAsked) reload();
  });
}

function parse() {
  return parseArgs({
    options: {
      config: { type: "string", short: "c" },
      check: { type: "boolean" },
      "check-token": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  }).values;
}

/** `--check`: the config is valid (it loaded); optionally prove each channel can get a token. */
async function check(config: GatewayConfig, fetchTokens: boolean): Promise<number> {
  process.stdout.write(
    `config OK: ${config.source}: ${config.channels.length} channel(s), ${config.models.length} model route(s), ${config.apiKeys.length} API key(s)\n`,
  );
  if (!fetchTokens) return 0;
  const pools = createPools();
  const tokens = createTokenCache({ pools });
  let failed = 0;
  try {
    for (const channel of config.channels) {
      const { credential } = channel;
      if (credential.kind === "pat") {
        // Coze has no endpoint that checks a personal access token (coze-api.md §11.1).
        process.stdout.write(
          `token SKIPPED: channels[${channel.name}]: a personal access token is sent as it is; there is no token to fetch\n`,
        );
        continue;
      }
      try {
        await tokens
          .source({ ...credential, refreshMarginMs: channel.refreshMarginMs })
          .getToken(AbortSignal.timeout(15_000));
        process.stdout.write(`token OK: channels[${channel.name}]\n`);
      } catch (err) {
        failed++;
        process.stdout.write(
          `token FAILED: channels[${channel.name}]: ${(err as Error).message}\n`,
        );
      }
    }
  } finally {
    await pools.destroy();
  }
  return failed === 0 ? 0 : 1;
}

function banner(url: string, demo: Demo, playground: boolean): string {
  const key = demo.apiKey;
  const page = playground
    ? `  browser  ${url}/playground  (chat and run workflows; paste the API key)\n`
    : "";
  const chat = JSON.stringify({
    model: demoModels.bot,
    messages: [{ role: "ROLE_USER", content: "Hello" }],
  });
  return `
coze-gateway demo mode: an embedded Coze emulator stands in for Coze (nothing leaves this machine).
  gateway  ${url}
  OpenAI   ${url}/v1  (base URL for the OpenAI SDKs and chat front-ends)
  API key  ${key}
  models   ${Object.values(demoModels).join(", ")}
           and more discovered in the demo space, with their names: ${url}/v1/models
${page}
Try it:
  curl -s ${url}/cozegateway.v1.ChatService/Chat \\
    -H "Authorization: Bearer ${key}" -H "Content-Type: application/json" \\
    -d '${chat}'

  npx buf curl --schema proto --protocol grpc --http2-prior-knowledge \\
    -H "Authorization: Bearer ${key}" -d '${chat}' \\
    ${url}/cozegateway.v1.ChatService/ChatStream

Speech and back (voices: curl ${url}/v1/audio/voices -H "Authorization: Bearer ${key}"):
${speechRoundTrip(url, key)}
Stop with Ctrl-C. Serve real Coze with --config FILE (see README.md).
`;
}

main().then(
  (code) => {
    observability.flush();
    process.exit(code);
  },
  (err: unknown) => {
    log("error", "fatal", { error: String((err as Error)?.stack ?? err) });
    observability.flush();
    process.exit(1);
  },
);

/** Demo mode's port: `COZE_GATEWAY_PORT` (blank counts as unset), 8080 by default. */
function demoPort(text: string | undefined): number | undefined {
  const trimmed = text?.trim() ?? "";
  if (trimmed === "") return 8080;
  const port = Number(trimmed);
  return /^\d{1,5}$/.test(trimmed) && port <= 65_535 ? port : undefined;
}
