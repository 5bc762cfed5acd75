import type { BotName } from "./catalog.js";
import type { ReceivedMessage } from "./chat-input.js";
import { chunk, type HistoryItem, type ToolCall } from "./chat-model.js";
import { newToolCallId } from "./ids.js";

/** What a scripted bot does in one turn; the chat runner plays it (stream or background). */
export type TurnScript =
  | {
      kind: "answer";
      reasoning: string[];
      chunks: string[];
      /** `slow` paces deltas by `timing.slowDeltaMs`, `normal` by `timing.deltaMs`. */
      pace: "normal" | "slow";
      followUps: string[];
    }
  | { kind: "tool"; call: ToolCall; functionCall: string }
  | { kind: "fail"; form: "recorded" | "bare" | "error_event" };

/** Everything a bot "received" for one turn. */
export interface TurnInput {
  userId: string;
  /** Conversation history before this turn (earlier questions and answers). */
  history: HistoryItem[];
  /** This request's `additional_messages`. */
  messages: ReceivedMessage[];
  customVariables: Record<string, unknown>;
  metaData: Record<string, unknown>;
  parameters: Record<string, unknown>;
}

const FOLLOW_UP = "What else would you like me to repeat?";

/** The last user text of a turn: this request's last user message, else the history's. */
export function lastUserText(input: TurnInput): string {
  const own = input.messages.findLast((m) => m.role === "user");
  if (own) return own.text;
  return input.history.findLast((m) => m.role === "user")?.content ?? "";
}

/**
 * The echo answer: `You said: <text>`, or, when the text starts with `!received`, the JSON text
 * of exactly what the bot received (history plus this request's messages, in order, with the
 * variables, meta data and parameters).
 */
export function echoAnswer(input: TurnInput): string {
  const text = lastUserText(input);
  if (!text.startsWith("!received")) return `You said: ${text}`;
  const strip = ({ role, type, content_type, content }: HistoryItem) => ({
    role,
    type,
    content_type,
    content,
  });
  return JSON.stringify({
    user_id: input.userId,
    messages: [...input.history.map(strip), ...input.messages.map(strip)],
    custom_variables: input.customVariables,
    meta_data: input.metaData,
    parameters: input.parameters,
  });
}

/** The script of `bot` for this turn. */
export function scriptFor(bot: BotName, input: TurnInput): TurnScript {
  const text = lastUserText(input);
  switch (bot) {
    case "echo":
      return answer(echoAnswer(input));
    case "reasoning":
      return {
        ...answer(echoAnswer(input)),
        reasoning: chunk(`The user wrote "${text}". I will repeat it back to them.`),
      };
    case "tool":
      return toolCall(text);
    case "failing":
      // §4.5 shows three failure forms; the user text picks one (see catalog).
      return {
        kind: "fail",
        form: text.includes("error-event")
          ? "error_event"
          : text.includes("bare")
            ? "bare"
            : "recorded",
      };
    case "slow": {
      const words = `You said: ${text}. This answer arrives slowly, one word at a time, so that cancellation and client disconnects can be observed.`;
      return { ...answer(""), chunks: words.split(/(?<= )/), pace: "slow" };
    }
  }
}

/** A plain answer script with a follow-up suggestion. */
export function answer(content: string, followUps = [FOLLOW_UP]): TurnScript & { kind: "answer" } {
  return { kind: "answer", reasoning: [], chunks: chunk(content), pace: "normal", followUps };
}

function toolCall(location: string): TurnScript {
  const args = JSON.stringify({ location });
  const call: ToolCall = {
    id: newToolCallId(),
    type: "function",
    function: { name: "get_weather", arguments: args },
  };
  // The `function_call` message content (§4.3): name, parsed arguments and plugin details.
  const functionCall = JSON.stringify({
    name: "get_weather",
    arguments: { location },
    plugin_id: "7390000000000000901",
    api_id: "7390000000000000902",
    plugin_type: 2,
    thought: "",
  });
  return { kind: "tool", call, functionCall };
}
