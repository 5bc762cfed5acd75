import type { EmulatorStats, EndpointName } from "./types.js";

/** Mutable counters behind `emulator.stats()`. */
export interface StatsRecorder {
  call(endpoint: EndpointName): void;
  poll(executeId: string): void;
  streamOpened(): void;
  streamClosed(): void;
  tokenIssued(): void;
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
    tokenIssued() {
      s.tokensIssued += 1;
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
        calls: { ...s.calls },
        polls: { ...s.polls },
        openStreams: open,
        chatsRunning: chatsRunning(),
      };
    },
    reset() {
      s = zero();
    },
  };
}

function zero(): EmulatorStats {
  return {
    tokenRequests: 0,
    tokensIssued: 0,
    calls: {},
    polls: {},
    openStreams: 0,
    chatsCreated: 0,
    chatsRunning: 0,
    workflowRunsStarted: 0,
  };
}
