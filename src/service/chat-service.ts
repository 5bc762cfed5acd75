import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { ChatResult } from "../coze/chat-result.js";
import { type ChatEvent, type ChatTurn, collectTurn } from "../coze/chat-stream.js";
import type { ChatMessage as CozeMessage, EnterMessage, ToolCall } from "../coze/chat-types.js";
import type { Usage as CozeUsage } from "../coze/wire.js";
import {
  type ChatRequest,
  type ChatResponseSchema,
  type ChatService,
  ChatStatus,
  type ChatStreamRequest,
  type ChatStreamResponse,
  ChatStreamResponseSchema,
} from "../gen/cozegateway/v1/chat_pb.js";
import type { UsageSchema } from "../gen/cozegateway/v1/common_pb.js";
import { type Caller, callerOf, defaultUserId } from "./caller.js";
import { channelHeader, invalidArgument, toConnectError } from "./errors.js";
import { onFirstChannel } from "./failover.js";
import { checkJsonDepth } from "./json-depth.js";
import { hasInlineData, toCozeMessages, toCozeMessagesNow } from "./messages.js";
import { traceOf } from "./request-context.js";
import type { Router, Target } from "./routing.js";

type TurnRequest = ChatRequest | ChatStreamRequest;

/** Maps a Coze usage to the contract's. */
export function usageOf(
  u: CozeUsage | undefined,
): MessageInitShape<typeof UsageSchema> | undefined {
  return u && { tokenCount: u.tokenCount, inputCount: u.inputCount, outputCount: u.outputCount };
}

function toolCallsOf(calls: readonly ToolCall[]) {
  return calls.map((c) => ({ id: c.id, type: c.type, name: c.name, arguments: c.arguments }));
}

function botMessage(m: CozeMessage) {
  return {
    id: m.id,
    type: m.type,
    content: m.content,
    contentType: m.contentType,
    reasoning: m.reasoningContent,
  };
}

/** The response fields of a finished turn (shared by Chat and the REST shim's non-stream path). */
export function chatResponseOf(r: ChatResult): MessageInitShape<typeof ChatResponseSchema> {
  return {
    conversationId: r.conversationId,
    chatId: r.chatId,
    status: r.status === "requires_action" ? ChatStatus.REQUIRES_ACTION : ChatStatus.COMPLETED,
    answer: r.answer,
    reasoning: r.reasoning,
    followUps: r.followUps,
    toolCalls: toolCallsOf(r.toolCalls),
    usage: usageOf(r.usage),
    messages: r.messages.map(botMessage),
  };
}

/** Options for {@link createChatService}. */
export interface ChatServiceOptions {
  router: Router;
}

/**
 * The ChatService implementation: routes the request, maps messages, runs the turn on the
 * channel's Coze client with the call's signal (a client that goes away cancels the Coze chat),
 * and maps every failure through {@link toConnectError}.
 */
export function createChatService(options: ChatServiceOptions): ServiceImpl<typeof ChatService> {
  const { router } = options;

  function target(req: TurnRequest, ctx: HandlerContext): Target {
    // A conversation or a chat that required action lives on one channel: no failover.
    const pinned = req.conversationId !== "" || req.toolOutputs.length > 0;
    const t = router.resolve(req, { field: "bot_id", id: req.botId, kind: "bot" }, callerOf(ctx), {
      pinned,
    });
    if (t.kind !== "bot" && t.kind !== "chatflow") {
      throw invalidArgument("model", `"${t.model}" is a workflow: call WorkflowService`);
    }
    return t;
  }

  /**
   * Opens the upstream event stream of a turn (a new turn, a chatflow turn or tool outputs) on
   * the first channel that takes it, and names that channel in the `x-gateway-channel` header. A
   * channel counts as taken once its stream is open and its first events arrived: a failure before
   * that moves on to the next channel (failover.ts), one after it is the caller's.
   */
  async function open(req: TurnRequest, ctx: HandlerContext): Promise<ChatTurn> {
    const t = target(req, ctx);
    if (req.toolOutputs.length > 0) {
      if (t.kind !== "bot") throw invalidArgument("tool_outputs", "only bots take tool outputs");
      if (req.conversationId === "")
        throw invalidArgument("conversation_id", "is required with tool_outputs");
      if (req.chatId === "") throw invalidArgument("chat_id", "is required with tool_outputs");
      req.toolOutputs.forEach((o, i) => {
        if (o.toolCallId === "")
          throw invalidArgument(`tool_outputs[${i}].tool_call_id`, "is required");
      });
    }
    checkJsonDepth("parameters", req.parameters);
    // Without inline files the Coze messages are the same on every channel: map them once,
    // before the failover.
    const messages =
      req.toolOutputs.length > 0 || hasInlineData(req.messages)
        ? undefined
        : toCozeMessagesNow(req.messages);
    const { value: turn, target: used } = await onFirstChannel(t, (c) =>
      openTurn(c, req, ctx, messages),
    );
    ctx.responseHeader.set(channelHeader, used.channel.name);
    return turn;
  }

  /**
   * The turn on one channel, with the messages mapped already (`messages`) or not. Inline files
   * are uploaded on that channel: Coze file ids are per account.
   */
  async function openTurn(
    t: Target,
    req: TurnRequest,
    ctx: HandlerContext,
    mapped: EnterMessage[] | undefined,
  ): Promise<ChatTurn> {
    const client = t.channel.client;
    if (req.toolOutputs.length > 0) {
      return client.chat.openToolOutputs({
        conversationId: req.conversationId,
        chatId: req.chatId,
        outputs: req.toolOutputs.map((o) => ({ toolCallId: o.toolCallId, output: o.output })),
        signal: ctx.signal,
        trace: traceOf(ctx),
      });
    }
    const messages =
      mapped ??
      (await toCozeMessages(req.messages, {
        files: client.files,
        signal: ctx.signal,
        trace: traceOf(ctx),
      }));
    const userId = req.userId || userIdOf(callerOf(ctx));
    if (t.kind === "chatflow") {
      return client.workflows.openChatflow({
        workflowId: t.id,
        messages,
        parameters: req.parameters,
        conversationId: req.conversationId || undefined,
        ext: { user_id: userId },
        signal: ctx.signal,
        trace: traceOf(ctx),
      });
    }
    return client.chat.open({
      botId: t.id,
      userId,
      conversationId: req.conversationId || undefined,
      messages,
      customVariables: nonEmpty(req.customVariables),
      metaData: nonEmpty(req.metaData),
      parameters: req.parameters,
      signal: ctx.signal,
      trace: traceOf(ctx),
    });
  }

  return {
    async chat(req, ctx) {
      try {
        return chatResponseOf(await collectTurn(await open(req, ctx)));
      } catch (err) {
        throw toConnectError(err, ctx.signal);
      }
    },

    async *chatStream(req, ctx) {
      try {
        let started = false;
        for await (const event of (await open(req, ctx)).events()) {
          const out = streamEvent(event, started);
          if (event.type === "chat.created" || event.type === "chat.in_progress") started = true;
          if (out) yield out;
        }
      } catch (err) {
        throw toConnectError(err, ctx.signal);
      }
    },

    async cancelChat(req, ctx) {
      try {
        const channel = req.model
          ? router.resolve(req, { field: "channel", id: "", kind: "bot" }, callerOf(ctx), {
              pinned: true,
            }).channel
          : router.channel(req.channel);
        if (req.conversationId === "") throw invalidArgument("conversation_id", "is required");
        if (req.chatId === "") throw invalidArgument("chat_id", "is required");
        const chat = await channel.client.chat.cancel({
          conversationId: req.conversationId,
          chatId: req.chatId,
          signal: ctx.signal,
          trace: traceOf(ctx),
        });
        return { canceled: chat.status === "canceled" };
      } catch (err) {
        throw toConnectError(err, ctx.signal);
      }
    },
  };
}

/** One upstream event as a stream response, or `undefined` for events callers do not see. */
function streamEvent(event: ChatEvent, started: boolean): ChatStreamResponse | undefined {
  switch (event.type) {
    case "chat.created":
    case "chat.in_progress":
      if (started) return undefined;
      return create(ChatStreamResponseSchema, {
        event: {
          case: "started",
          value: { conversationId: event.chat.conversationId, chatId: event.chat.id },
        },
      });
    case "message.delta":
      if (event.message.type !== "answer") return undefined;
      return create(ChatStreamResponseSchema, {
        event: {
          case: "delta",
          value: {
            messageId: event.message.id,
            text: event.message.content,
            reasoning: event.message.reasoningContent,
          },
        },
      });
    case "message.completed":
      return create(ChatStreamResponseSchema, {
        event: { case: "message", value: botMessage(event.message) },
      });
    case "chat.requires_action":
      return create(ChatStreamResponseSchema, {
        event: { case: "requiresAction", value: { toolCalls: toolCallsOf(event.toolCalls) } },
      });
    case "chat.completed":
      return create(ChatStreamResponseSchema, {
        event: { case: "completed", value: { usage: usageOf(event.chat.usage) } },
      });
    default:
      return undefined;
  }
}

// The default user id of each API key name (a SHA-256 per request otherwise). Names come from
// the configured keys, so the map stays small; the cap only guards against misuse.
const userIds = new Map<string, string>();

function userIdOf(caller: Caller | undefined): string {
  const name = caller?.name ?? "";
  let id = userIds.get(name);
  if (id === undefined) {
    id = defaultUserId(caller);
    if (userIds.size >= 1024) userIds.clear();
    userIds.set(name, id);
  }
  return id;
}

function nonEmpty(map: Record<string, string>): Record<string, string> | undefined {
  return Object.keys(map).length > 0 ? map : undefined;
}
