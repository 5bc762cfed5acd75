import type { EmulatorStats, EndpointName } from "./types.js";

/** Mutable counters behind `emulator.stats()`. */
export interface StatsRecorder {
  call(endpoint: EndpointName): void;
  poll(executeId: string): void;
  streamOpened(): void;
  streamClosed(): void;
  /** A token was issued for a JWT with this `session_name` (`undefined`: none, §12.2). */
  tokenIssued(sessionName: string | undefined): void;
  chatCreated(): void;
  workflowRunStarted(): void;
  snapshot(): EmulatorStats;
  /** Zeroes the counters; `openStreams` keeps counting the streams still open. */
  reset(): void;
}

/** Creates zeroed counters; `chatsRunning` counts the running chats for each snapshot. */
export function createStats(chatsRunning: () => number = () => 0): StatsRecorder {
  let s = zero();
  let open = 0;
  // A Map, not an object: session names are client-chosen strings ("__proto__" included).
  let bySession = new Map<string, number>();
  return {
    call(endpoint) {
      s.calls[endpoint] = (s.calls[endpoint] ?? 0) + 1;
      if (endpoint === "token") s.tokenRequests += 1;
    },
    poll(executeId) {
      s.polls[executeId] = (s.polls[executeId] ?? 0) + 1;
    },
    streamOpened() {
      open += 1;
    },
    streamClosed() {
      open -= 1;
    },
    tokenIssued(sessionName) {
      s.tokensIssued += 1;
      const key = sessionName ?? "";
      bySession.set(key, (bySession.get(key) ?? 0) + 1);
    },
    chatCreated() {
      s.chatsCreated += 1;
    },
    workflowRunStarted() {
      s.workflowRunsStarted += 1;
    },
    snapshot() {
      return {
        ...s,
        tokensBySession: Object.fromEntries(bySession),
        calls: { ...s.calls },
        polls: { ...s.polls },
        openStreams: open,
        chatsRunning: chatsRunning(),
      };
    },
    reset() {
      s = zero();
      bySession = new Map();
    },
  };
}

function zero(): EmulatorStats {
  return {
    tokenRequests: 0,
    tokensIssued: 0,
    tokensBySession: {},
    calls: {},
    polls: {},
    openStreams: 0,
    chatsCreated: 0,
    chatsRunning: 0,
    workflowRunsStarted: 0,
  };
}
