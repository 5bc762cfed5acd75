import { openChatTurn } from "./chat-open.js";
import { type ChatResult, createChatAccumulator } from "./chat-result.js";
import { type ChatEvent, type ChatStreamState, type ChatTurn, collectTurn } from "./chat-stream.js";
import {
  type ChatInfo,
  type ChatMessage,
  type EnterMessage,
  encodeMessages,
  isTerminalStatus,
  parseChat,
  parseMessage,
} from "./chat-types.js";
import type { Clock } from "./clock.js";
import { CozeError, isCozeError, safeMessage } from "./errors.js";
import type { StreamResponse } from "./event-stream.js";
import type { CallTrace, CozeHttp } from "./http.js";
import { type PollOptions, pollToEnd } from "./poll.js";
import { compact, type Json } from "./wire.js";

/** One bot turn (`POST /v3/chat`, coze-api.md §4.1). */
export interface ChatRequest {
  botId: string;
  /** The end user; Coze isolates conversations and memory by it. */
  userId: string;
  /** Continue this conversation; a new one is created when absent. */
  conversationId?: string;
  /** `additional_messages`: history and the new user turn, last one `user`; at most 100. */
  messages: readonly EnterMessage[];
  customVariables?: Record<string, string>;
  metaData?: Record<string, string>;
  extraParams?: Record<string, string>;
  /** Chatflow custom parameters (an object, not a string). */
  parameters?: Record<string, unknown>;
  /** Default true; Coze requires true for non-stream chats. */
  autoSaveHistory?: boolean;
  botVersion?: string;
  publishStatus?: "published_online" | "unpublished_draft";
  enableCard?: boolean;
  shortcutCommand?: { commandId: string; parameters?: Record<string, string> };
  signal?: AbortSignal;
  /** Collects the Coze log ids of the calls made for this request. */
  trace?: CallTrace;
}

/** Tool outputs for a chat that required action (`/v3/chat/submit_tool_outputs`, §4.4). */
export interface SubmitToolOutputsRequest {
  conversationId: string;
  chatId: string;
  outputs: readonly { toolCallId: string; output: string }[];
  signal?: AbortSignal;
  /** Collects the Coze log ids of the calls made for this request. */
  trace?: CallTrace;
}

/** Identifies one chat. */
export interface ChatRef {
  conversationId: string;
  chatId: string;
  signal?: AbortSignal;
  /** Collects the Coze log ids of the calls made for this request. */
  trace?: CallTrace;
}

/** Polling settings of the create-retrieve-list mode. */
export type ChatPolling = Omit<PollOptions, "step" | "clock" | "signal">;

/** Options for {@link createChatApi}. */
export interface ChatApiOptions {
  http: CozeHttp;
  clock: Clock;
  /** Defaults for {@link ChatApi.chatByPolling}: every 1 s, at most 300 polls. */
  polling?: ChatPolling;
  /** Deadline of the best-effort cancel sent when a caller abandons a chat, in ms. Default 5 000. */
  cancelTimeoutMs?: number;
  /**
   * How long a chat its caller abandoned before Coze's first event is still read to learn its id
   * and cancel it, in ms. Default 5 000.
   */
  learnIdTimeoutMs?: number;
}

/** The Coze chat API. */
export interface ChatApi {
  /**
   * Starts one bot turn: resolves once its event stream is open and its first events arrived
   * (the point after which a failover must not send it elsewhere). Read the turn once.
   */
  open(req: ChatRequest): Promise<ChatTurn>;
  /**
   * Streams one bot turn as typed events. When the caller aborts, at any moment, or stops
   * iterating before the chat finished, the chat is canceled upstream (best effort) so Coze stops
   * working on it; an abort before Coze named the chat reads on until it did (`openChatTurn`).
   */
  stream(req: ChatRequest): AsyncGenerator<ChatEvent, void>;
  /** One bot turn, aggregated from a single upstream stream (one upstream request). */
  chat(req: ChatRequest): Promise<ChatResult>;
  /** One bot turn by create (non-stream), retrieve polling and message list. */
  chatByPolling(req: ChatRequest, polling?: ChatPolling): Promise<ChatResult>;
  /** Submits tool outputs; resolves like {@link ChatApi.open}. */
  openToolOutputs(req: SubmitToolOutputsRequest): Promise<ChatTurn>;
  /** Submits tool outputs and streams the rest of the turn. */
  streamToolOutputs(req: SubmitToolOutputsRequest): AsyncGenerator<ChatEvent, void>;
  /** Submits tool outputs and aggregates the rest of the turn. */
  submitToolOutputs(req: SubmitToolOutputsRequest): Promise<ChatResult>;
  retrieve(ref: ChatRef): Promise<ChatInfo>;
  listMessages(ref: ChatRef): Promise<ChatMessage[]>;
  /** Cancels a chat. A chat that already finished (Coze code 4104) is returned as it is. */
  cancel(ref: ChatRef): Promise<ChatInfo>;
}

/** Creates the chat API on top of the HTTP layer. */
export function createChatApi(options: ChatApiOptions): ChatApi {
  const { http, clock } = options;
  const cancelTimeoutMs = options.cancelTimeoutMs ?? 5_000;
  const learnIdTimeoutMs = options.learnIdTimeoutMs ?? 5_000;

  function body(req: ChatRequest, stream: boolean): Json {
    return compact({
      bot_id: req.botId,
      user_id: req.userId,
      additional_messages: encodeMessages(req.messages),
      stream,
      // Non-stream chats must save history (coze-api.md §4.1).
      auto_save_history: stream ? (req.autoSaveHistory ?? true) : true,
      custom_variables: req.customVariables,
      meta_data: req.metaData,
      extra_params: req.extraParams,
      parameters: req.parameters,
      bot_version: req.botVersion,
      publish_status: req.publishStatus,
      enable_card: req.enableCard,
      shortcut_command: req.shortcutCommand && {
        command_id: req.shortcutCommand.commandId,
        parameters: req.shortcutCommand.parameters,
      },
    });
  }

  /** Best-effort cancel for a chat its caller walked away from; never throws. */
  function abandon(state: ChatStreamState): void {
    if (state.finished || !state.conversationId || !state.chatId) return;
    api
      .cancel({
        conversationId: state.conversationId,
        chatId: state.chatId,
        signal: undefined,
      })
      .catch(() => {});
  }

  /**
   * Opens a turn's event stream; a turn left unfinished, or abandoned by its caller at any
   * moment, is canceled upstream.
   */
  function openTurn(
    step: string,
    send: (signal: AbortSignal) => Promise<StreamResponse>,
    state: ChatStreamState,
    signal: AbortSignal | undefined,
  ): Promise<ChatTurn> {
    return openChatTurn({
      step,
      send,
      state,
      signal,
      clock,
      abandon: () => abandon(state),
      learnIdTimeoutMs,
    });
  }

  const api: ChatApi = {
    open(req) {
      const state: ChatStreamState = {
        conversationId: req.conversationId,
        chatId: undefined,
        finished: false,
      };
      return openTurn(
        "chat.stream",
        (signal) =>
          http.stream({
            step: "chat.stream",
            method: "POST",
            path: "/v3/chat",
            query: { conversation_id: req.conversationId },
            body: body(req, true),
            signal,
            trace: req.trace,
          }),
        state,
        req.signal,
      );
    },

    async *stream(req) {
      yield* (await api.open(req)).events();
    },

    async chat(req) {
      return collectTurn(await api.open(req));
    },

    async chatByPolling(req, polling) {
      const created = await http.json({
        step: "chat.create",
        method: "POST",
        path: "/v3/chat",
        query: { conversation_id: req.conversationId },
        body: body(req, false),
        signal: req.signal,
        trace: req.trace,
      });
      const chat = parseChat(created.body.data);
      if (!chat)
        throw new CozeError("protocol", safeMessage("protocol", "chat.create"), {
          step: "chat.create",
          logId: created.logId,
        });
      const ref = { conversationId: chat.conversationId, chatId: chat.id };
      let final: ChatInfo;
      try {
        final = await pollToEnd(
          (signal) => api.retrieve({ ...ref, signal, trace: req.trace }),
          (c) => isTerminalStatus(c.status),
          {
            intervalMs: 1_000,
            maxPolls: 300,
            // Each read already retries transient failures itself (http.ts); keep the product
            // of both bounded.
            retry: { maxAttempts: 2 },
            ...options.polling,
            ...polling,
            step: "chat.retrieve",
            clock,
            signal: req.signal,
          },
        );
      } catch (err) {
        abandon({ ...ref, finished: false });
        throw err;
      }
      if (final.status === "failed") {
        throw new CozeError("failed", safeMessage("failed", "chat", final.lastError?.code), {
          step: "chat",
          cozeCode: final.lastError?.code,
          cozeMessage: final.lastError?.msg,
        });
      }
      if (final.status === "canceled") {
        throw new CozeError("canceled", safeMessage("canceled", "chat"), { step: "chat" });
      }
      const messages = await api.listMessages({ ...ref, signal: req.signal, trace: req.trace });
      const acc = createChatAccumulator();
      acc.add(
        final.status === "requires_action"
          ? { type: "chat.requires_action", chat: final, toolCalls: final.toolCalls }
          : { type: "chat.completed", chat: final },
      );
      for (const message of messages) acc.add({ type: "message.completed", message });
      return acc.result();
    },

    openToolOutputs(req) {
      const state: ChatStreamState = {
        conversationId: req.conversationId,
        chatId: req.chatId,
        finished: false,
      };
      return openTurn(
        "chat.submit_tool_outputs",
        (signal) =>
          http.stream({
            step: "chat.submit_tool_outputs",
            method: "POST",
            path: "/v3/chat/submit_tool_outputs",
            query: { conversation_id: req.conversationId, chat_id: req.chatId },
            body: {
              tool_outputs: req.outputs.map((o) => ({
                tool_call_id: o.toolCallId,
                output: o.output,
              })),
              stream: true,
            },
            signal,
            trace: req.trace,
          }),
        state,
        req.signal,
      );
    },

    async *streamToolOutputs(req) {
      yield* (await api.openToolOutputs(req)).events();
    },

    async submitToolOutputs(req) {
      return collectTurn(await api.openToolOutputs(req));
    },

    async retrieve(ref) {
      const res = await http.json({
        step: "chat.retrieve",
        method: "GET",
        path: "/v3/chat/retrieve",
        query: { conversation_id: ref.conversationId, chat_id: ref.chatId },
        signal: ref.signal,
        trace: ref.trace,
      });
      return requireChat("chat.retrieve", res.body.data, res.logId);
    },

    async listMessages(ref) {
      const res = await http.json({
        step: "chat.messages",
        method: "GET",
        path: "/v3/chat/message/list",
        query: { conversation_id: ref.conversationId, chat_id: ref.chatId },
        signal: ref.signal,
        trace: ref.trace,
      });
      const data = res.body.data;
      if (!Array.isArray(data)) {
        throw new CozeError("protocol", safeMessage("protocol", "chat.messages"), {
          step: "chat.messages",
          logId: res.logId,
        });
      }
      return data.map(parseMessage).filter((m): m is ChatMessage => m !== undefined);
    },

    async cancel(ref) {
      try {
        const res = await http.json({
          step: "chat.cancel",
          method: "POST",
          path: "/v3/chat/cancel",
          body: { conversation_id: ref.conversationId, chat_id: ref.chatId },
          signal: ref.signal,
          trace: ref.trace,
          timeoutMs: cancelTimeoutMs,
          // Canceling twice is harmless: the second answers 4104, handled below.
          idempotent: true,
        });
        return requireChat("chat.cancel", res.body.data, res.logId);
      } catch (err) {
        // 4104: the chat already finished; report its state instead (coze-api.md §1.5, as py).
        if (isCozeError(err) && err.cozeCode === 4104) return api.retrieve(ref);
        throw err;
      }
    },
  };
  return api;
}

function requireChat(step: string, data: unknown, logId: string | undefined): ChatInfo {
  const chat = parseChat(data);
  if (!chat) throw new CozeError("protocol", safeMessage("protocol", step), { step, logId });
  return chat;
}
