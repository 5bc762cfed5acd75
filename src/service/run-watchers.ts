import type { CallTrace } from "../coze/http.js";
import type { PollTick } from "../coze/poll.js";
import type { WorkflowRun } from "../coze/workflow-types.js";
import type { Channel } from "./channels.js";

/** One shared poll loop: its subscribers, and the last tick for those who join late. */
interface Loop {
  subscribers: Set<Subscriber>;
  latest: PollTick<WorkflowRun> | undefined;
  stop: AbortController;
}

/** A watcher's mailbox: ticks in order, then the end (a final run or an error). */
interface Subscriber {
  queue: PollTick<WorkflowRun>[];
  end: { error: unknown } | { done: true } | undefined;
  wake: (() => void) | undefined;
}

/**
 * Shares one run-history poll loop per run among all its watchers (issue #6 "at most one poll
 * per execute id per interval"): the first watcher of a run starts the loop, later ones join it
 * and get the latest status at once, and the loop stops when the run ends or the last watcher
 * leaves.
 */
export interface RunWatchers {
  /**
   * Yields every status read of the run, like `WorkflowApi.watch`, from the shared loop; ends
   * after the read that left `running`. `signal` ends this watcher only. `immediate`: a loop
   * this watcher starts reads the run at once rather than after the poll interval (a caller
   * re-attaching to a run that may have ended long ago, issue 16). `trace`: the request of a
   * watcher that starts a loop, whose log line and trace get the loop's polls.
   */
  watch(
    channel: Channel,
    workflowId: string,
    executeId: string,
    signal: AbortSignal,
    options?: { immediate?: boolean; trace?: CallTrace | undefined },
  ): AsyncGenerator<PollTick<WorkflowRun>, void>;
  /** Runs being polled now (for metrics and tests). */
  readonly active: number;
}

/** Creates the registry of shared run watchers. */
export function createRunWatchers(options: { onPollStarted?: () => () => void } = {}): RunWatchers {
  const loops = new Map<string, Loop>();

  function deliver(sub: Subscriber) {
    const wake = sub.wake;
    sub.wake = undefined;
    wake?.();
  }

  function start(
    key: string,
    channel: Channel,
    workflowId: string,
    executeId: string,
    immediate: boolean,
    trace: CallTrace | undefined,
  ): Loop {
    const loop: Loop = { subscribers: new Set(), latest: undefined, stop: new AbortController() };
    loops.set(key, loop);
    const ended = options.onPollStarted?.();
    void (async () => {
      let end: Subscriber["end"];
      try {
        const polling = immediate ? { firstIntervalsMs: [0] } : undefined;
        const ref = { workflowId, executeId, signal: loop.stop.signal, trace };
        for await (const tick of channel.client.workflows.watch(ref, polling)) {
          loop.latest = tick;
          for (const sub of loop.subscribers) {
            sub.queue.push(tick);
            deliver(sub);
          }
        }
        end = { done: true };
      } catch (error) {
        end = { error };
      } finally {
        if (loops.get(key) === loop) loops.delete(key);
        ended?.();
      }
      for (const sub of loop.subscribers) {
        sub.end = end;
        deliver(sub);
      }
    })();
    return loop;
  }

  return {
    get active() {
      return loops.size;
    },
    async *watch(channel, workflowId, executeId, signal, options = {}) {
      const key = `${channel.name}\u0000${workflowId}\u0000${executeId}`;
      const loop =
        loops.get(key) ??
        start(key, channel, workflowId, executeId, options.immediate === true, options.trace);
      const sub: Subscriber = {
        queue: loop.latest ? [loop.latest] : [],
        end: undefined,
        wake: undefined,
      };
      loop.subscribers.add(sub);
      const onAbort = () => deliver(sub);
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        while (true) {
          if (signal.aborted) throw signal.reason;
          const tick = sub.queue.shift();
          if (tick) {
            yield tick;
            if (tick.done) return;
            continue;
          }
          if (sub.end) {
            if ("error" in sub.end) throw sub.end.error;
            return;
          }
          await new Promise<void>((resolve) => {
            sub.wake = resolve;
          });
        }
      } finally {
        signal.removeEventListener("abort", onAbort);
        loop.subscribers.delete(sub);
        // The last watcher gone: nobody needs the run polled any more. A new watcher starts a
        // fresh loop rather than joining one that is stopping.
        if (loop.subscribers.size === 0 && loops.get(key) === loop) {
          loops.delete(key);
          loop.stop.abort();
        }
      }
    },
  };
}
