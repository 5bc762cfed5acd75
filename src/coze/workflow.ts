import { openChatTurn } from "./chat-open.js";
import type { ChatEvent, ChatStreamState, ChatTurn } from "./chat-stream.js";
import { type EnterMessage, encodeMessages } from "./chat-types.js";
import type { Clock } from "./clock.js";
import { CozeError, safeMessage } from "./errors.js";
import type { CallTrace, CozeHttp } from "./http.js";
import { type PollOptions, type PollTick, pollToEnd, pollUntil } from "./poll.js";
import { compact, id, type Json, obj, str } from "./wire.js";
import { failedRunError, runEnded, runReply } from "./workflow-reply.js";
import { type WorkflowEvent, workflowEvents } from "./workflow-stream.js";
import { parseRun, toOutput, type WorkflowRun, type WorkflowRunResult } from "./workflow-types.js";

/** Starts a workflow (`/v1/workflow/run`, `/v1/workflow/stream_run`, coze-api.md §5.1). */
export interface WorkflowRunRequest {
  workflowId: string;
  /** Input parameters, sent as an object. File inputs are strings holding JSON. */
  parameters?: Record<string, unknown>;
  botId?: string;
  appId?: string;
  ext?: Record<string, string>;
  workflowVersion?: string;
  connectorId?: string;
  signal?: AbortSignal;
  /** Collects the Coze log ids of the calls made for this request. */
  trace?: CallTrace;
}

/**
 * Resumes an interrupted run: a stream's interrupt through `/v1/workflow/stream_resume` (§5.3),
 * a run reply's through `/v1/workflows/resume` (§14.3).
 */
export interface WorkflowResumeRequest {
  workflowId: string;
  eventId: string;
  resumeData: string;
  /** The interrupt's type, as reported with it. */
  interruptType: number;
  signal?: AbortSignal;
  /** Collects the Coze log ids of the calls made for this request. */
  trace?: CallTrace;
}

/** A chatflow turn (`/v1/workflows/chat`, §5.6). */
export interface ChatflowRequest {
  workflowId: string;
  messages: readonly EnterMessage[];
  parameters?: Record<string, unknown>;
  appId?: string;
  botId?: string;
  conversationId?: string;
  ext?: Record<string, string>;
  signal?: AbortSignal;
  /** Collects the Coze log ids of the calls made for this request. */
  trace?: CallTrace;
}

/** Identifies a run. */
export interface RunRef {
  workflowId: string;
  executeId: string;
  signal?: AbortSignal;
  /** Collects the Coze log ids of the calls made for this request. */
  trace?: CallTrace;
}

/** Polling settings for async runs. */
export type RunPolling = Omit<PollOptions, "step" | "clock" | "signal">;

/** Options for {@link createWorkflowApi}. */
export interface WorkflowApiOptions {
  http: CozeHttp;
  clock: Clock;
  /** Async-run polling defaults: every 2 s, at most 150 polls (the old channel's values). */
  polling?: RunPolling;
  /** Deadline of a synchronous run in ms; Coze cuts sync runs at 90 s. Default 100 000. */
  syncRunTimeoutMs?: number;
  /**
   * Cancels the chat of a chatflow turn its caller abandoned (`ChatApi.cancel`); best effort.
   * Without it such a chat is left to run on.
   */
  cancelChat?: (ref: { conversationId: string; chatId: string }) => Promise<unknown>;
  /** See `ChatApiOptions.learnIdTimeoutMs`. Default 5 000. */
  learnIdTimeoutMs?: number;
}

/** The Coze workflow API. */
export interface WorkflowApi {
  /** Runs a workflow and waits for its output (one request). */
  run(req: WorkflowRunRequest): Promise<WorkflowRunResult>;
  /** Starts an async run (`is_async`) and returns its execute id at once. */
  start(req: WorkflowRunRequest): Promise<{ executeId: string; debugUrl: string | undefined }>;
  /** Reads one run from the run history. */
  getRun(ref: RunRef): Promise<WorkflowRun>;
  /**
   * Polls a run until it leaves `running`, yielding every status read (with the poll number and
   * the elapsed time). Bounded by the polling settings; throws `timeout` when they run out.
   */
  watch(ref: RunRef, polling?: RunPolling): AsyncGenerator<PollTick<WorkflowRun>, WorkflowRun>;
  /**
   * Polls a started run until it ends or waits on an interrupt (then `interrupt` is set and the
   * output empty). A run that failed throws {@link failedRunError}.
   */
  wait(
    ref: RunRef,
    polling?: RunPolling,
  ): Promise<WorkflowRun & { output: NonNullable<WorkflowRun["output"]> }>;
  /** Starts an async run and {@link WorkflowApi.wait}s for it. */
  runAsync(
    req: WorkflowRunRequest,
    polling?: RunPolling,
  ): Promise<WorkflowRun & { output: NonNullable<WorkflowRun["output"]> }>;
  /** Streams a run (`stream_run`). */
  stream(req: WorkflowRunRequest): AsyncGenerator<WorkflowEvent, void>;
  /**
   * Starts a streamed run (`stream_run`) and resolves as soon as Coze accepted it (the stream's
   * headers), not at its first event, which a long run sends late; with the run's events.
   * Throws what Coze answered instead of a stream. Closing the events releases the stream.
   */
  openRun(req: WorkflowRunRequest): Promise<AsyncGenerator<WorkflowEvent, void>>;
  /** Resumes an interrupted run and streams the rest (`stream_resume`). */
  resume(req: WorkflowResumeRequest): AsyncGenerator<WorkflowEvent, void>;
  /**
   * Resumes a run interrupted in a run reply (`POST /v1/workflows/resume`, §14.3), which no
   * SDK implements. The resume runs as the run did: synchronously (the answer holds the output
   * or the next interrupt, like {@link WorkflowApi.run}), or, for an async run, in the
   * background: then `pending` is true, the output empty, and the run is polled by its id.
   */
  resumeRun(req: WorkflowResumeRequest): Promise<WorkflowRunResult & { pending: boolean }>;
  /** Starts a chatflow turn; resolves once its stream is open and its first events arrived. */
  openChatflow(req: ChatflowRequest): Promise<ChatTurn>;
  /** Streams a chatflow turn; the events are chat events (§5.6). */
  chatflow(req: ChatflowRequest): AsyncGenerator<ChatEvent, void>;
  /** The whole output of one node of a run whose history output was trimmed (§5.5). */
  nodeOutput(
    ref: RunRef & { nodeExecuteUuid: string },
  ): Promise<{ output: string; isFinish: boolean }>;
}

/** Creates the workflow API on top of the HTTP layer. */
export function createWorkflowApi(options: WorkflowApiOptions): WorkflowApi {
  const { http, clock } = options;
  const syncRunTimeoutMs = options.syncRunTimeoutMs ?? 100_000;

  function runBody(req: WorkflowRunRequest, isAsync: boolean | undefined): Json {
    return compact({
      workflow_id: req.workflowId,
      parameters: req.parameters ?? {},
      bot_id: req.botId,
      app_id: req.appId,
      ext: req.ext,
      workflow_version: req.workflowVersion,
      connector_id: req.connectorId,
      is_async: isAsync,
    });
  }

  function pollOptions(step: string, signal: AbortSignal | undefined, polling?: RunPolling) {
    return {
      intervalMs: 2_000,
      maxPolls: 150,
      // Each history read already retries transient failures itself (http.ts).
      retry: { maxAttempts: 2 },
      ...options.polling,
      ...polling,
      step,
      clock,
      signal,
    };
  }

  async function* streamFrom(step: string, open: () => ReturnType<CozeHttp["stream"]>) {
    const stream = await open();
    try {
      yield* workflowEvents(step, stream);
    } finally {
      await stream.close();
    }
  }

  const api: WorkflowApi = {
    async run(req) {
      const res = await http.json({
        step: "workflow.run",
        method: "POST",
        path: "/v1/workflow/run",
        body: runBody(req, undefined),
        signal: req.signal,
        trace: req.trace,
        timeoutMs: syncRunTimeoutMs,
      });
      const { pending, ...result } = runReply("workflow.run", res.body, res.logId, false);
      return result;
    },

    async resumeRun(req) {
      const res = await http.json({
        step: "workflow.resume_run",
        method: "POST",
        path: "/v1/workflows/resume",
        body: {
          workflow_id: req.workflowId,
          event_id: req.eventId,
          resume_data: req.resumeData,
          interrupt_type: req.interruptType,
        },
        signal: req.signal,
        trace: req.trace,
        timeoutMs: syncRunTimeoutMs,
      });
      return runReply("workflow.resume_run", res.body, res.logId, true);
    },

    async start(req) {
      const res = await http.json({
        step: "workflow.start",
        method: "POST",
        path: "/v1/workflow/run",
        body: runBody(req, true),
        signal: req.signal,
        trace: req.trace,
      });
      const top = obj(res.body.data) ?? res.body;
      const executeId = id(top.execute_id) ?? id(res.body.execute_id);
      if (executeId === undefined) {
        throw new CozeError("protocol", safeMessage("protocol", "workflow.start"), {
          step: "workflow.start",
          logId: res.logId,
        });
      }
      return { executeId, debugUrl: str(top.debug_url) || str(res.body.debug_url) || undefined };
    },

    async getRun(ref) {
      const res = await http.json({
        step: "workflow.history",
        method: "GET",
        path: `/v1/workflows/${encodeURIComponent(ref.workflowId)}/run_histories/${encodeURIComponent(ref.executeId)}`,
        signal: ref.signal,
        trace: ref.trace,
      });
      // `data` is a one-element array (§5.4).
      const data = res.body.data;
      const run = parseRun(Array.isArray(data) ? data[0] : data);
      if (!run) {
        throw new CozeError("protocol", safeMessage("protocol", "workflow.history"), {
          step: "workflow.history",
          logId: res.logId,
        });
      }
      return run;
    },

    watch(ref, polling) {
      return pollUntil(
        (signal) => api.getRun({ ...ref, signal }),
        runEnded,
        pollOptions("workflow.history", ref.signal, polling),
      );
    },

    async wait(ref, polling) {
      const run = await pollToEnd(
        (signal) =>
          api.getRun({
            workflowId: ref.workflowId,
            executeId: ref.executeId,
            signal,
            trace: ref.trace,
          }),
        runEnded,
        pollOptions("workflow.history", ref.signal, polling),
      );
      if (run.status !== "success" && run.interrupt === undefined) throw failedRunError(run);
      return { ...run, output: run.output ?? toOutput("") };
    },

    async runAsync(req, polling) {
      const { executeId } = await api.start(req);
      return api.wait(
        { workflowId: req.workflowId, executeId, signal: req.signal, trace: req.trace },
        polling,
      );
    },

    stream(req) {
      return streamFrom("workflow.stream", () =>
        http.stream({
          step: "workflow.stream",
          method: "POST",
          path: "/v1/workflow/stream_run",
          body: runBody(req, undefined),
          signal: req.signal,
          trace: req.trace,
        }),
      );
    },

    async openRun(req) {
      const stream = await http.stream({
        step: "workflow.stream",
        method: "POST",
        path: "/v1/workflow/stream_run",
        body: runBody(req, undefined),
        signal: req.signal,
        trace: req.trace,
        openAtHeaders: true,
      });
      return streamFrom("workflow.stream", () => Promise.resolve(stream));
    },

    resume(req) {
      return streamFrom("workflow.resume", () =>
        http.stream({
          step: "workflow.resume",
          method: "POST",
          path: "/v1/workflow/stream_resume",
          body: {
            workflow_id: req.workflowId,
            event_id: req.eventId,
            resume_data: req.resumeData,
            interrupt_type: req.interruptType,
          },
          signal: req.signal,
          trace: req.trace,
        }),
      );
    },

    openChatflow(req) {
      const state: ChatStreamState = {
        conversationId: req.conversationId,
        chatId: undefined,
        finished: false,
      };
      const { cancelChat } = options;
      return openChatTurn({
        step: "workflow.chat",
        send: (signal) =>
          http.stream({
            step: "workflow.chat",
            method: "POST",
            path: "/v1/workflows/chat",
            body: compact({
              workflow_id: req.workflowId,
              additional_messages: encodeMessages(req.messages),
              parameters: req.parameters ?? {},
              app_id: req.appId,
              bot_id: req.botId,
              conversation_id: req.conversationId,
              ext: req.ext,
            }),
            signal,
            trace: req.trace,
          }),
        state,
        signal: req.signal,
        clock,
        // A chatflow turn is a chat: a turn left unfinished is canceled like a bot's.
        abandon() {
          const { conversationId, chatId } = state;
          if (state.finished || !conversationId || !chatId || !cancelChat) return;
          cancelChat({ conversationId, chatId }).catch(() => {});
        },
        learnIdTimeoutMs: options.learnIdTimeoutMs ?? 5_000,
      });
    },

    async *chatflow(req) {
      yield* (await api.openChatflow(req)).events();
    },

    async nodeOutput(ref) {
      const res = await http.json({
        step: "workflow.node_output",
        method: "GET",
        path: `/v1/workflows/${encodeURIComponent(ref.workflowId)}/run_histories/${encodeURIComponent(ref.executeId)}/execute_nodes/${encodeURIComponent(ref.nodeExecuteUuid)}`,
        signal: ref.signal,
        trace: ref.trace,
      });
      const data = obj(res.body.data);
      return { output: str(data?.node_output) ?? "", isFinish: data?.is_finish === true };
    },
  };
  return api;
}
