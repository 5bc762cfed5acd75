import { ConfigError, type GatewayConfig, planReload, type ServerConfig } from "./config/index.js";
import type { RuntimeHolder } from "./gateway-holder.js";
import type { Runtime } from "./gateway-runtime.js";
import type { LogFn, ReloadMetrics, ReloadOutcome } from "./observability/index.js";

/** How one config reload went. */
export interface ReloadResult {
  outcome: ReloadOutcome;
  /** The first 12 hex digits of the file's SHA-256, when it could be read. */
  sha256: string | undefined;
  /** Every problem of an invalid file, or why the reload failed; empty when applied. */
  errors: string[];
  /** The changed settings that only a restart applies (the rest applied). */
  needsRestart: string[];
}

/** Options of {@link createReloader}. */
export interface ReloaderOptions {
  holder: RuntimeHolder;
  /**
   * Builds the runtime of a config, keeping what is unchanged from `previous`, and readies it to
   * serve (its discovery's first lists, bounded).
   */
  build(config: GatewayConfig, previous: Runtime): Runtime | Promise<Runtime>;
  /** Told of a runtime once it is current (the limiter takes its keys' limits). */
  applied?(runtime: Runtime): void;
  /** Hands renewed TLS files to the server. */
  setTls(tls: NonNullable<ServerConfig["tls"]>): void;
  /** Releases what a runtime built but never used holds. */
  discard(runtime: Runtime): void;
  log: LogFn;
  metrics: ReloadMetrics;
}

/**
 * Makes the gateway's reload: `load` reads and validates the config (as `--check` does), then
 * {@link planReload} keeps what needs a restart as it runs, the next runtime is built beside the
 * current one, and swapped in at once: calls under way finish on the old one, new calls get the
 * new one. An invalid file, or a runtime that cannot be built, changes nothing. Each reload
 * logs one `config reload` line (outcome, the file's hash prefix, counts; never a value of the
 * file) after a line per problem or needs-restart setting, and counts into the reload metrics.
 * Reloads run one at a time; a reload asked for while one runs comes after it, and several
 * asked for meanwhile make one.
 */
export function createReloader(
  options: ReloaderOptions,
): (load: () => Promise<GatewayConfig>) => Promise<ReloadResult> {
  const { holder, log, metrics } = options;
  let running: Promise<unknown> = Promise.resolve();
  let queued: Promise<ReloadResult> | undefined;

  const finish = (result: ReloadResult, fields: Record<string, unknown> = {}): ReloadResult => {
    metrics.reloaded(result.outcome, result.sha256);
    log(result.outcome === "applied" ? "info" : "error", "config reload", {
      outcome: result.outcome,
      sha256: result.sha256,
      errors: result.errors.length,
      needsRestart: result.needsRestart.length,
      ...fields,
    });
    return result;
  };

  const reload = async (load: () => Promise<GatewayConfig>): Promise<ReloadResult> => {
    let config: GatewayConfig;
    try {
      config = await load();
    } catch (err) {
      if (!(err instanceof ConfigError)) return failed(err, undefined);
      // A ConfigError's message names the file and field, never a value of a secret.
      const errors = err.all.map((e) => e.message);
      for (const error of errors) log("error", "config reload: invalid config", { error });
      const sha256 = err.sha256?.slice(0, 12);
      return finish({ outcome: "invalid", sha256, errors, needsRestart: [] }, { kept: "running" });
    }
    const sha256 = config.sha256?.slice(0, 12);
    const previous = holder.current;
    const plan = planReload(previous.config, config);
    let next: Runtime;
    try {
      next = await options.build(plan.config, previous);
    } catch (err) {
      return failed(err, sha256);
    }
    if (plan.tls !== undefined) {
      try {
        options.setTls(plan.tls);
      } catch (err) {
        options.discard(next);
        return failed(err, sha256);
      }
    }
    for (const warning of config.warnings) log("warn", warning);
    for (const setting of plan.needsRestart) {
      log("warn", "config reload: needs a restart", { setting });
    }
    holder.swap(next);
    options.applied?.(next);
    const kept = next.channels.all.filter((c) => previous.channels.get(c.name) === c).length;
    return finish(
      { outcome: "applied", sha256, errors: [], needsRestart: plan.needsRestart },
      {
        keys: config.apiKeys.length,
        channels: config.channels.length,
        channelsKept: kept,
        models: config.models.length,
        tls: plan.tls === undefined ? undefined : "renewed",
      },
    );
  };

  /** A reload that could not be applied for another reason than the file's. */
  function failed(err: unknown, sha256: string | undefined): ReloadResult {
    // Our own TypeErrors name a field, never its value; anything else is named by its type.
    const error =
      err instanceof TypeError ? err.message : err instanceof Error ? err.name : typeof err;
    log("error", "config reload: cannot apply the config", { error });
    return finish({ outcome: "failed", sha256, errors: [error], needsRestart: [] });
  }

  return (load) => {
    if (queued !== undefined) return queued;
    const next = running.then(() => {
      queued = undefined;
      return reload(load);
    });
    queued = next;
    running = next.catch(() => {});
    return next;
  };
}
