import { create } from "@bufbuild/protobuf";
import {
  ChatRequestSchema,
  ChatStatus,
  ChatStreamRequestSchema,
  Role,
} from "../gen/cozegateway/v1/chat_pb.js";
import type { FinishReason } from "./answer-format.js";
import { type ChatPlan, renameServiceParam, toChatPlan } from "./chat-request.js";
import {
  type CompletionMessage,
  type OpenAiToolCall,
  type OpenAiUsage,
  usageOf,
} from "./completion-format.js";
import { checkedFormat, instructionOf } from "./json-output.js";
import { OpenAiError } from "./openai-error.js";
import { encodeToolCallId } from "./tool-call-id.js";
import { runStream, runUnary, type Turn } from "./turn.js";

/** The response header that carries the Coze conversation of a bot or chatflow turn. */
export const conversationHeader = "x-coze-conversation-id";

interface ToolCallInit {
  id?: string;
  name?: string;
  arguments?: string;
}

function toolCallsOf(
  calls: readonly ToolCallInit[] | undefined,
  conversationId: string,
  chatId: string,
): OpenAiToolCall[] {
  return (calls ?? []).map((c) => ({
    // Issue #4 decision 2: the id carries the conversation, chat and Coze tool call ids.
    id: encodeToolCallId({ conversationId, chatId, toolCallId: c.id ?? "" }),
    type: "function",
    function: { name: c.name ?? "", arguments: c.arguments ?? "" },
  }));
}

const renamer = (plan: ChatPlan) => (err: OpenAiError) => renameServiceParam(err, plan);

/**
 * The plan and turn of a bot or chatflow request. With a JSON `response_format` (issue 16) the
 * bot is told so in a system message after the caller's (a tool-output turn sends no messages:
 * the chat it continues was told already), and the answer is checked before it is written.
 */
function planOf(turn: Turn): [ChatPlan, Turn] {
  const plan = toChatPlan(turn.request);
  const output = turn.request.jsonOutput;
  if (output === undefined) return [plan, turn];
  plan.init.messages?.push({ role: Role.SYSTEM, content: instructionOf(output) });
  return [plan, { ...turn, format: checkedFormat(turn.format, output) }];
}

/**
 * A non-stream bot or chatflow completion through `ChatService.Chat`: the answer messages joined
 * by a blank line (issue #4 decision 4; verbose and follow-up messages are not part of it), the
 * reasoning as `reasoning_content`, tool calls with `finish_reason: "tool_calls"`, the usage, and
 * the conversation id in the `X-Coze-Conversation-Id` header and the `conversation_id` field.
 * Written by the turn's format: Chat Completions terms here; the Responses door makes items of
 * the same message.
 */
export function botCompletion(asked: Turn): Promise<void> {
  const [plan, turn] = planOf(asked);
  return runUnary(
    turn,
    async (ctx) => {
      const r = await turn.services.chat.chat(create(ChatRequestSchema, plan.init), ctx);
      const conversationId = r.conversationId ?? "";
      const chatId = r.chatId ?? "";
      const requiresAction = r.status === ChatStatus.REQUIRES_ACTION;
      const message: CompletionMessage = { content: r.answer || (requiresAction ? null : "") };
      if (r.reasoning) message.reasoning_content = r.reasoning;
      if (requiresAction) {
        message.tool_calls = toolCallsOf(r.toolCalls, conversationId, chatId);
      }
      const json = turn.format.unary(
        message,
        requiresAction ? "tool_calls" : "stop",
        usageOf(r.usage),
        { conversation_id: conversationId },
        { conversationId, chatId },
      );
      const headers: Record<string, string> = {};
      if (conversationId) headers[conversationHeader] = conversationId;
      return { json, headers };
    },
    renamer(plan),
  );
}

/** A stream that ended without `completed` or `requires_action`: never a success. */
function cutStream(): OpenAiError {
  return new OpenAiError(502, {
    message: "chat.stream: the upstream stream ended before the turn finished",
    type: "server_error",
    code: "upstream_error",
    param: null,
  });
}

/**
 * A streamed bot or chatflow completion through `ChatService.ChatStream`. The headers wait for
 * the service's `started` event, so they carry `X-Coze-Conversation-Id`; then every answer delta
 * is written as it arrives, reasoning as `reasoning_content` deltas, a blank line before the
 * first text of each further answer message (decision 4), tool calls as one `tool_calls` delta,
 * the finish chunk (with `conversation_id`), the usage chunk when asked for, and `[DONE]`; or the
 * Responses events for the same steps, by the turn's format, which gets the Coze ids first.
 */
export async function botStream(asked: Turn): Promise<void> {
  const [plan, turn] = planOf(asked);
  await runStream(
    turn,
    async (s) => {
      const { fmt } = s;
      let conversationId = "";
      let chatId = "";
      // The answer message that wrote text last, and the messages that came as deltas (their
      // completed form must not be written again).
      let textMessageId: string | undefined;
      let deltaMessageId: string | undefined;
      const streamed = new Set<string>();
      let usage: OpenAiUsage | undefined;
      let ending: FinishReason | undefined;
      const text = (messageId: string, content: string) => {
        const sep = textMessageId !== undefined && textMessageId !== messageId ? "\n\n" : "";
        textMessageId = messageId;
        return sep + content;
      };
      const events = turn.services.chat.chatStream(
        create(ChatStreamRequestSchema, plan.init),
        s.ctx,
      );
      for await (const { event } of events) {
        if (s.sse.ended) break;
        switch (event?.case) {
          case "started":
            conversationId = event.value.conversationId ?? "";
            chatId = event.value.chatId ?? "";
            s.fmt.identify({ conversationId, chatId });
            s.begin(conversationId ? { [conversationHeader]: conversationId } : {});
            break;
          case "delta": {
            const { messageId = "", text: delta = "", reasoning = "" } = event.value;
            if (messageId !== deltaMessageId) {
              deltaMessageId = messageId;
              streamed.add(messageId);
            }
            const content = delta === "" ? "" : text(messageId, delta);
            if (content === "" && reasoning === "") break;
            s.begin();
            const w = s.write(
              reasoning === "" ? fmt.content(content) : fmt.delta(content, reasoning),
            );
            if (w) await w;
            break;
          }
          case "message": {
            // An answer that came whole, without deltas; verbose and follow-up messages never
            // become content (issue #4 "Answers").
            const m = event.value;
            if (m.type !== "answer" || !m.content || streamed.has(m.id ?? "")) break;
            s.begin();
            const w = s.write(fmt.content(text(m.id ?? "", m.content)));
            if (w) await w;
            break;
          }
          case "requiresAction": {
            s.begin();
            s.write(fmt.toolCalls(toolCallsOf(event.value.toolCalls, conversationId, chatId)));
            ending = "tool_calls";
            break;
          }
          case "completed":
            usage = usageOf(event.value.usage);
            ending = "stop";
            break;
          default:
            break;
        }
      }
      if (s.sse.ended) return;
      if (ending === undefined) throw cutStream();
      s.finish(ending, { conversation_id: conversationId }, usage);
    },
    renamer(plan),
  );
}
