import type { ChatEvent } from "./chat-stream.js";
import type { ChatInfo, ChatMessage, ToolCall } from "./chat-types.js";
import type { Usage } from "./wire.js";

/** The outcome of one bot turn, gathered from a stream or from polling. */
export interface ChatResult {
  conversationId: string;
  chatId: string;
  /** `completed`, or `requires_action` when the bot waits for tool outputs. */
  status: "completed" | "requires_action";
  /** The answer messages' texts, in order. */
  answers: string[];
  /** The answers joined by a blank line: what a single-text client shows. */
  answer: string;
  /** Reasoning (chain of thought) of reasoning models, concatenated. */
  reasoning: string;
  /** Suggested follow-up questions. */
  followUps: string[];
  /** Tool calls to run when `status` is `requires_action`. */
  toolCalls: ToolCall[];
  usage: Usage | undefined;
  /** Every completed message, verbose and tool messages included. */
  messages: ChatMessage[];
}

/**
 * Folds chat events into a {@link ChatResult}. Deltas are kept per message id and replaced by
 * the completed message when it arrives, so a stream that skips `message.completed` still yields
 * the whole answer.
 */
export function createChatAccumulator() {
  const order: string[] = [];
  const partial = new Map<string, ChatMessage>();
  const completed = new Map<string, ChatMessage>();
  let chat: ChatInfo | undefined;
  let toolCalls: ToolCall[] = [];
  let status: ChatResult["status"] = "completed";

  return {
    add(event: ChatEvent): void {
      switch (event.type) {
        case "chat.created":
        case "chat.in_progress":
        case "chat.completed":
          chat = event.chat;
          break;
        case "chat.requires_action":
          chat = event.chat;
          toolCalls = event.toolCalls;
          status = "requires_action";
          break;
        case "message.delta": {
          const m = event.message;
          const prev = partial.get(m.id);
          if (prev) {
            prev.content += m.content;
            prev.reasoningContent += m.reasoningContent;
          } else {
            if (!completed.has(m.id)) order.push(m.id);
            partial.set(m.id, { ...m });
          }
          break;
        }
        case "message.completed": {
          const m = event.message;
          if (!partial.has(m.id) && !completed.has(m.id)) order.push(m.id);
          completed.set(m.id, m);
          break;
        }
        default:
          break;
      }
    },
    result(): ChatResult {
      // One pass over the messages (issue #6: this runs for every non-stream turn).
      const messages: ChatMessage[] = [];
      const answers: string[] = [];
      const followUps: string[] = [];
      let reasoning = "";
      for (const id of order) {
        const m = completed.get(id) ?? (partial.get(id) as ChatMessage);
        messages.push(m);
        if (m.type === "answer") {
          if (m.content !== "") answers.push(m.content);
          reasoning += m.reasoningContent;
        } else if (m.type === "follow_up") followUps.push(m.content);
      }
      return {
        conversationId: chat?.conversationId ?? "",
        chatId: chat?.id ?? "",
        status,
        answers,
        answer: answers.join("\n\n"),
        reasoning,
        followUps,
        toolCalls,
        usage: chat?.usage,
        messages,
      };
    },
  };
}
