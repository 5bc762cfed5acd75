import type { DiscoveryKind } from "../config/index.js";
import { backoffDelay } from "../coze/backoff.js";
import { type Clock, systemClock } from "../coze/clock.js";
import type { ListResult } from "../coze/discovery.js";
import { CozeError } from "../coze/errors.js";
import type { CallTrace, CallTracer } from "../coze/http.js";
import type { Channel, Channels } from "./channels.js";
import type { DiscoveredItem, ModelTable, TableChange } from "./discovery-table.js";

/** One kind's refresh on one channel, for metrics. */
export interface DiscoveryEvent {
  channel: string;
  kind: DiscoveryKind;
  /** `ok`: the list was read and is served; `failed`: the last list is kept. */
  outcome: "ok" | "failed";
  /** Names the channel's items of this kind are served under now. */
  models: number;
}

/** A log function of the gateway's shape. Never given a secret. */
export type DiscoveryLog = (
  level: "info" | "warn" | "error",
  msg: string,
  fields?: Record<string, unknown>,
) => void;

/** The trace of one refresh, when tracing records it. */
export interface DiscoveryTrace {
  /** Where the refresh's Coze calls join the trace. */
  readonly tracer: CallTracer;
  /** Ends the refresh's span; `failed` when a kind's list failed. */
  end(failed: boolean): void;
}

/** Options for {@link createDiscovery}. */
export interface DiscoveryOptions {
  /** The live channels; those with `discovery.enabled` are listed. */
  channels: Channels;
  /** Where the lists go. */
  models: ModelTable;
  /** Time for the refresh interval, the retry delays and the start wait. Default the system's. */
  clock?: Clock;
  log?: DiscoveryLog;
  /** Called after each kind's refresh on each channel. */
  onRefresh?: (event: DiscoveryEvent) => void;
  /** Jitter of the retry delays after a failed refresh, in [0, 1). Default `Math.random`. */
  random?: () => number;
  /**
   * What an earlier discovery of a channel found (a config reload that kept the channel): served
   * from the start, and kept, kind by kind, while a list fails. Default none.
   */
  seed?: (channel: string) => readonly DiscoveredItem[];
  /** Starts the trace of one channel's refresh; `undefined` (the default): not traced. */
  trace?: (channel: string) => DiscoveryTrace | undefined;
}

/** The background discovery of every channel that has it on. */
export interface Discovery {
  /**
   * Starts each channel's refresh loop and resolves once every channel's first list is in, or
   * its `discovery.start_wait_ms` ran out (the list then arrives later; a warning says so).
   * Never rejects: a failed list leaves the channel without discovered names until a retry.
   */
  start(): Promise<void>;
  /** Stops the loops, cancelling a list under way, and resolves when they have ended. */
  close(): Promise<void>;
}

/** First retry after a failed refresh; it doubles up to the channel's interval. */
const retryInitialMs = 5_000;
/** Names a log line shows at most. */
const shownNames = 20;

/**
 * Creates the discovery of the channels' Coze spaces (coze-api.md §13). Each channel with
 * `discovery.enabled` has one loop: list every configured kind (bots, then workflows, then
 * chatflows) from its `space_id`, hand the result to the model table, sleep `interval_ms`, again.
 * Lists are never read on a request's path. A kind whose list fails keeps its last list, a
 * warning says so, and the channel tries again after 5 s, doubling up to `interval_ms`.
 * Workflows of an app (`app_id` other than `"0"`) are left out: a run of one needs the app's
 * id, which a model name cannot carry.
 */
export function createDiscovery(options: DiscoveryOptions): Discovery {
  const clock = options.clock ?? systemClock;
  const log = options.log ?? (() => {});
  const random = options.random ?? Math.random;
  const stop = new AbortController();
  const loops: Promise<void>[] = [];
  const enabled = options.channels.all.filter((c) => c.config.discovery.enabled);

  /** One channel's state between refreshes. */
  function channelLoop(channel: Channel) {
    const config = channel.config.discovery;
    const spaceId = channel.config.spaceId ?? "";
    const last = new Map<DiscoveryKind, DiscoveredItem[]>();
    const seeded = (options.seed?.(channel.name) ?? []).filter((i) =>
      config.kinds.includes(i.kind),
    );
    for (const kind of config.kinds) {
      const items = seeded.filter((i) => i.kind === kind);
      if (items.length > 0) last.set(kind, items);
    }
    // Served at once: a reload does not hide what the channel's space held a moment ago.
    if (seeded.length > 0) options.models.setDiscovered(channel.name, seeded);
    const truncated = new Set<DiscoveryKind>();
    let renamed = "";

    async function list(kind: DiscoveryKind, trace: CallTrace | undefined): Promise<ListResult> {
      const request = {
        workspaceId: spaceId,
        maxItems: config.maxModels,
        signal: stop.signal,
        trace,
      };
      return kind === "bot"
        ? channel.client.discovery.listBots(request)
        : channel.client.discovery.listWorkflows({ ...request, mode: kind });
    }

    /** Lists every kind once, in one trace when tracing records it; true when all succeeded. */
    async function refresh(): Promise<boolean> {
      const traced = options.trace?.(channel.name);
      let ok = false;
      try {
        ok = await listAll(traced && { cozeLogIds: [], tracer: traced.tracer });
        return ok;
      } finally {
        traced?.end(!ok);
      }
    }

    async function listAll(trace: CallTrace | undefined): Promise<boolean> {
      let ok = true;
      let skipped = 0;
      const outcomes = new Map<DiscoveryKind, "ok" | "failed">();
      for (const kind of config.kinds) {
        try {
          const result = await list(kind, trace);
          const served = result.items.filter((i) => i.appId === undefined);
          skipped += result.items.length - served.length;
          last.set(
            kind,
            served.map((i) => ({ kind, id: i.id, name: i.name, description: i.description })),
          );
          noteTruncation(kind, result.truncated);
          outcomes.set(kind, "ok");
        } catch (err) {
          if (stop.signal.aborted) return false;
          ok = false;
          outcomes.set(kind, "failed");
          log("warn", "discovery refresh failed; keeping the last list", {
            channel: channel.name,
            kind,
            ...errorFields(err),
            kept: last.get(kind)?.length ?? 0,
          });
        }
      }
      const change = options.models.setDiscovered(
        channel.name,
        config.kinds.flatMap((k) => last.get(k) ?? []),
      );
      report(change, skipped);
      const served = options.models.served(channel.name);
      for (const [kind, outcome] of outcomes) {
        options.onRefresh?.({ channel: channel.name, kind, outcome, models: served[kind] });
      }
      return ok;
    }

    function noteTruncation(kind: DiscoveryKind, cut: boolean) {
      if (cut && !truncated.has(kind)) {
        log("warn", "discovery list cut at max_models", {
          channel: channel.name,
          kind,
          maxModels: config.maxModels,
        });
      }
      if (cut) truncated.add(kind);
      else truncated.delete(kind);
    }

    function report(change: TableChange, skipped: number) {
      if (change.added.length > 0 || change.removed.length > 0) {
        log("info", "discovered models changed", {
          channel: channel.name,
          added: change.added.slice(0, shownNames),
          removed: change.removed.slice(0, shownNames),
          addedCount: change.added.length,
          removedCount: change.removed.length,
          appWorkflowsSkipped: skipped,
        });
      }
      const now = change.renamed.join("\n");
      if (now !== renamed && change.renamed.length > 0) {
        log("warn", "discovered names taken by a configured route or another item", {
          channel: channel.name,
          renamed: change.renamed.slice(0, shownNames),
          renamedCount: change.renamed.length,
        });
      }
      renamed = now;
    }

    /** Refreshes until stopped; `first` is called once the first refresh ended. */
    async function run(first: () => void): Promise<void> {
      let failures = 0;
      for (;;) {
        const ok = await refresh().catch(() => false);
        first();
        if (stop.signal.aborted) return;
        const delay = ok
          ? config.intervalMs
          : backoffDelay(
              failures++,
              { initialMs: Math.min(retryInitialMs, config.intervalMs), maxMs: config.intervalMs },
              random,
            );
        if (ok) failures = 0;
        try {
          await clock.sleep(delay, stop.signal);
        } catch {
          return;
        }
      }
    }

    return { run };
  }

  async function startOne(channel: Channel): Promise<void> {
    let firstDone!: () => void;
    const first = new Promise<void>((resolve) => {
      firstDone = resolve;
    });
    loops.push(channelLoop(channel).run(firstDone));
    const waitMs = channel.config.discovery.startWaitMs;
    const wait = new AbortController();
    const timedOut = clock.sleep(waitMs, AbortSignal.any([wait.signal, stop.signal])).then(
      () => true,
      () => false,
    );
    const late = await Promise.race([first.then(() => false), timedOut]);
    wait.abort();
    // A wait of 0 asked not to wait: nothing to warn about.
    if (late && waitMs > 0) {
      log("warn", "discovery's first list is not in yet; starting without it", {
        channel: channel.name,
        startWaitMs: waitMs,
      });
    }
  }

  return {
    async start() {
      await Promise.all(enabled.map(startOne));
    },
    async close() {
      stop.abort();
      await Promise.all(loops);
    },
  };
}

/** What a failed list says, without Coze's message text (it is not ours to repeat). */
function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof CozeError) {
    return {
      code: err.code,
      step: err.step,
      status: err.status,
      cozeCode: err.cozeCode,
      cozeLogId: err.logId,
    };
  }
  return { code: "internal" };
}
