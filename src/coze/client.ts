import { type AudioApi, createAudioApi } from "./audio.js";
import { type ChatApi, type ChatPolling, createChatApi } from "./chat.js";
import { type Clock, systemClock } from "./clock.js";
import { createDiscoveryApi, type DiscoveryApi } from "./discovery.js";
import { createFilesApi, type FilesApi } from "./files.js";
import { type AccessTokens, type CallInfo, createCozeHttp } from "./http.js";
import type { Pools } from "./pools.js";
import type { RetryPolicy } from "./retry.js";
import { createWorkflowApi, type RunPolling, type WorkflowApi } from "./workflow.js";

/** Options for {@link createCozeClient}. */
export interface CozeClientOptions {
  /** Coze API base URL: `https://api.coze.cn`, `https://api.coze.com`, or an emulator. */
  baseUrl: string;
  /** Access tokens for this client's credential (a `TokenSource` from the token cache). */
  tokens: AccessTokens;
  /** Shared per-origin connection pools. */
  pools: Pools;
  clock?: Clock;
  userAgent?: string;
  /** Deadline of unary calls in ms. Default 60 000. */
  requestTimeoutMs?: number;
  /** Most time to establish a connection in ms. Default 5 000. */
  connectTimeoutMs?: number;
  /** Most time to wait for response headers in ms. Default 30 000. */
  headersTimeoutMs?: number;
  /** Longest silence on an open stream in ms. Default 60 000. */
  streamIdleTimeoutMs?: number;
  /** Deadline of a synchronous workflow run in ms. Default 100 000. */
  syncRunTimeoutMs?: number;
  /** Async workflow polling: default every 2 000 ms, at most 150 polls. */
  workflowPolling?: RunPolling;
  /** Chat polling (create-retrieve-list mode): default every 1 000 ms, at most 300 polls. */
  chatPolling?: ChatPolling;
  /** When to retry upstream calls; only safe retries happen (see `RetryPolicy`). */
  retry?: RetryPolicy;
  onCall?: (info: CallInfo) => void;
}

/** A Coze client for one credential: chat, workflows, files, audio and discovery. */
export interface CozeClient {
  readonly baseUrl: string;
  readonly audio: AudioApi;
  readonly chat: ChatApi;
  readonly workflows: WorkflowApi;
  readonly files: FilesApi;
  /** The published bots and workflows of a workspace (coze-api.md §13). */
  readonly discovery: DiscoveryApi;
}

/** Creates a Coze client. It owns nothing that needs closing: the pools belong to the caller. */
export function createCozeClient(options: CozeClientOptions): CozeClient {
  const clock = options.clock ?? systemClock;
  const http = createCozeHttp({
    baseUrl: options.baseUrl,
    tokens: options.tokens,
    pools: options.pools,
    clock,
    userAgent: options.userAgent,
    requestTimeoutMs: options.requestTimeoutMs,
    connectTimeoutMs: options.connectTimeoutMs,
    headersTimeoutMs: options.headersTimeoutMs,
    streamIdleTimeoutMs: options.streamIdleTimeoutMs,
    retry: options.retry,
    onCall: options.onCall,
  });
  const chat = createChatApi({ http, clock, polling: options.chatPolling });
  return {
    baseUrl: options.baseUrl,
    audio: createAudioApi(http),
    chat,
    workflows: createWorkflowApi({
      http,
      clock,
      polling: options.workflowPolling,
      syncRunTimeoutMs: options.syncRunTimeoutMs,
      cancelChat: (ref) => chat.cancel(ref),
    }),
    files: createFilesApi(http),
    discovery: createDiscoveryApi(http),
  };
}
