import { create, type MessageInitShape } from "@bufbuild/protobuf";
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
import { callerOf, tenantOf } from "./caller.js";
import { type ChannelGate, gated } from "./channel-gate.js";
import type { CoreContext, CoreImpl } from "./core-context.js";
import { channelHeader, invalidArgument, notFound } from "./errors.js";
import { onFirstChannel } from "./failover.js";
import { checkJsonDepth } from "./json-depth.js";
import { hasInlineData, toCozeMessages, toCozeMessagesNow } from "./messages.js";
import { traceOf } from "./request-context.js";
import type { Router, Target } from "./routing.js";
import type { HandleKind, Tenant } from "./tenant.js";

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

/**
 * The response fields of a finished turn (shared by Chat and the REST shim's non-stream path),
 * with the conversation and chat ids sealed to `tenant`.
 */
export function chatResponseOf(
  r: ChatResult,
  tenant: Tenant,
): MessageInitShape<typeof ChatResponseSchema> {
  return {
    conversationId: sealed(tenant, "conversation", r.conversationId),
    chatId: sealed(tenant, "chat", r.chatId),
    status: r.status === "requires_action" ? ChatStatus.REQUIRES_ACTION : ChatStatus.COMPLETED,
    answer: r.answer,
    reasoning: r.reasoning,
    followUps: r.followUps,
    toolCalls: toolCallsOf(r.toolCalls),
    usage: usageOf(r.usage),
    messages: r.messages.map(botMessage),
  };
}

function sealed(tenant: Tenant, kind: HandleKind, id: string | undefined): string {
  return id ? tenant.seal(kind, id) : "";
}

/**
 * The Coze id behind a handed-out id in `field`; `""` stays `""`.
 * @throws GatewayError `not_found`, the same for an id that does not exist and one that is not the
 *   caller's (another key's, forged, truncated): nothing tells the two apart.
 */
export function opened(tenant: Tenant, kind: HandleKind, field: string, handle: string): string {
  if (handle === "") return "";
  const id = tenant.open(kind, handle);
  if (id === undefined) throw notFound(field, `${field}: no ${kindNames[kind]} with this id`);
  return id;
}

const kindNames: Record<HandleKind, string> = {
  conversation: "conversation",
  chat: "chat",
  run: "workflow run",
  interrupt: "interrupt",
  run_interrupt: "interrupt",
};

/** Options for {@link createChatService}. */
export interface ChatServiceOptions {
  router: Router;
}

/**
 * The ChatService implementation: routes the request, maps messages, runs the turn on the
 * channel's Coze client with the call's signal (a client that goes away cancels the Coze chat),
 * and throws the core's errors as data (the Connect door maps them, see `serviceRoutes`).
 */
export function createChatService(options: ChatServiceOptions): CoreImpl<typeof ChatService> {
  const { router } = options;

  function target(req: TurnRequest, ctx: CoreContext): Target {
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
  async function open(req: TurnRequest, ctx: CoreContext): Promise<ChatTurn> {
    const t = target(req, ctx);
    const tenant = tenantOf(ctx);
    // Ids handed to another key are refused before Coze is called (issue 13).
    const ids = {
      conversationId: opened(tenant, "conversation", "conversation_id", req.conversationId),
      chatId: "",
    };
    if (req.toolOutputs.length > 0) {
      if (t.kind !== "bot") throw invalidArgument("tool_outputs", "only bots take tool outputs");
      if (req.conversationId === "")
        throw invalidArgument("conversation_id", "is required with tool_outputs");
      if (req.chatId === "") throw invalidArgument("chat_id", "is required with tool_outputs");
      ids.chatId = opened(tenant, "chat", "chat_id", req.chatId);
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
      gatedTurn(c.channel.gate, ctx.signal, () => openTurn(c, req, ctx, tenant, ids, messages)),
    );
    ctx.responseHeader.set(channelHeader, used.channel.name);
    return turn;
  }

  /**
   * The turn on one channel, with the messages mapped already (`messages`) or not and the Coze
   * ids behind the handed-out ones (`ids`). Inline files are uploaded on that channel: Coze file
   * ids are per account.
   */
  async function openTurn(
    t: Target,
    req: TurnRequest,
    ctx: CoreContext,
    tenant: Tenant,
    ids: { conversationId: string; chatId: string },
    mapped: EnterMessage[] | undefined,
  ): Promise<ChatTurn> {
    const { conversationId } = ids;
    // The end user's own Coze session when the channel keeps one per end user (§12.2).
    const client = t.channel.clientForUser(tenant, req.userId);
    if (req.toolOutputs.length > 0) {
      return client.chat.openToolOutputs({
        conversationId,
        chatId: ids.chatId,
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
    // Namespaced per key: a caller's `user_id` never names another key's end user (issue 13).
    const userId = tenant.userId(req.userId);
    if (t.kind === "chatflow") {
      return client.workflows.openChatflow({
        workflowId: t.id,
        messages,
        parameters: req.parameters,
        conversationId: conversationId || undefined,
        ext: { user_id: userId },
        signal: ctx.signal,
        trace: traceOf(ctx),
      });
    }
    return client.chat.open({
      botId: t.id,
      userId,
      conversationId: conversationId || undefined,
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
      return chatResponseOf(await collectTurn(await open(req, ctx)), tenantOf(ctx));
    },

    async *chatStream(req, ctx) {
      let started = false;
      const tenant = tenantOf(ctx);
      for await (const event of (await open(req, ctx)).events()) {
        const out = streamEvent(event, started, tenant);
        if (event.type === "chat.created" || event.type === "chat.in_progress") started = true;
        if (out) yield out;
      }
    },

    async cancelChat(req, ctx) {
      const channel = req.model
        ? router.resolve(req, { field: "channel", id: "", kind: "bot" }, callerOf(ctx), {
            pinned: true,
          }).channel
        : router.channel(req.channel);
      if (req.conversationId === "") throw invalidArgument("conversation_id", "is required");
      if (req.chatId === "") throw invalidArgument("chat_id", "is required");
      // Model-free, so the handles are the whole check: only the key that started the chat
      // can cancel it.
      const tenant = tenantOf(ctx);
      const conversationId = opened(tenant, "conversation", "conversation_id", req.conversationId);
      const chatId = opened(tenant, "chat", "chat_id", req.chatId);
      const chat = await gated(channel.gate, ctx.signal, () =>
        channel.clientForUser(tenant, req.userId).chat.cancel({
          conversationId,
          chatId,
          signal: ctx.signal,
          trace: traceOf(ctx),
        }),
      );
      return { canceled: chat.status === "canceled" };
    },
  };
}

/**
 * Opens a turn holding a slot of the channel's `gate` until the turn's events are read to their
 * end (or the reading stops): a streamed turn is a call to Coze for as long as it streams.
 */
async function gatedTurn(
  gate: ChannelGate | undefined,
  signal: AbortSignal,
  open: () => Promise<ChatTurn>,
): Promise<ChatTurn> {
  if (gate === undefined) return open();
  const release = await gate.enter(signal);
  let turn: ChatTurn;
  try {
    turn = await open();
  } catch (err) {
    release();
    throw err;
  }
  return {
    read: (onEvent) => turn.read(onEvent).finally(release),
    async *events() {
      try {
        yield* turn.events();
      } finally {
        release();
      }
    },
  };
}

/** One upstream event as a stream response, or `undefined` for events callers do not see. */
function streamEvent(
  event: ChatEvent,
  started: boolean,
  tenant: Tenant,
): ChatStreamResponse | undefined {
  switch (event.type) {
    case "chat.created":
    case "chat.in_progress":
      if (started) return undefined;
      return create(ChatStreamResponseSchema, {
        event: {
          case: "started",
          value: {
            conversationId: sealed(tenant, "conversation", event.chat.conversationId),
            chatId: sealed(tenant, "chat", event.chat.id),
          },
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

function nonEmpty(map: Record<string, string>): Record<string, string> | undefined {
  return Object.keys(map).length > 0 ? map : undefined;
}
