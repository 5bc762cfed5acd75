import type { Client } from "@connectrpc/connect";
import {
  type ChatService,
  type ChatStreamResponse,
  Role,
} from "../../gen/cozegateway/v1/chat_pb.js";
import { byId, describeError, element, isCanceled } from "./dom.js";

/**
 * Wires the Chat panel: each Send streams one `ChatService.ChatStream` turn of the selected
 * model and shows the answer as its deltas arrive, reasoning apart from it, follow-up
 * suggestions, and errors with their Connect code. Stop aborts the call. Turns on the same model
 * continue the Coze conversation; "New conversation" starts another.
 */
export function createChatPanel(client: Client<typeof ChatService>): void {
  const form = byId("chat-form", HTMLFormElement);
  const model = byId("chat-model", HTMLSelectElement);
  const message = byId("chat-message", HTMLTextAreaElement);
  const send = byId("chat-send", HTMLButtonElement);
  const stop = byId("chat-stop", HTMLButtonElement);
  const restart = byId("chat-new", HTMLButtonElement);
  const error = byId("chat-error", HTMLParagraphElement);
  const log = byId("chat-log", HTMLOListElement);
  let running: AbortController | undefined;
  let conversation: { model: string; id: string } | undefined;

  const setBusy = (busy: boolean) => {
    send.disabled = busy;
    stop.disabled = !busy;
    form.setAttribute("aria-busy", String(busy));
  };
  const ask = (text: string) => {
    message.value = text;
    message.focus();
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void turn();
  });
  // Enter sends, Shift+Enter starts a new line (as chat front-ends do).
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stop.addEventListener("click", () => running?.abort());
  restart.addEventListener("click", () => {
    running?.abort();
    conversation = undefined;
    error.textContent = "";
    log.replaceChildren();
  });

  async function turn(): Promise<void> {
    const text = message.value.trim();
    if (running !== undefined || text === "") return;
    const name = model.value;
    if (conversation?.model !== name) conversation = undefined;
    error.textContent = "";
    const user = element("li", "turn-user");
    user.append(element("span", "who", "You"), element("div", "content", text));
    const bot = createBotTurn(name, ask);
    log.append(user, bot.item);
    message.value = "";
    const controller = new AbortController();
    running = controller;
    setBusy(true);
    try {
      const stream = client.chatStream(
        {
          model: name,
          messages: [{ role: Role.USER, content: text }],
          conversationId: conversation?.id ?? "",
        },
        { signal: controller.signal },
      );
      for await (const res of stream) {
        if (res.event.case === "started") {
          conversation = { model: name, id: res.event.value.conversationId };
        }
        bot.apply(res.event);
      }
    } catch (err) {
      if (isCanceled(err, controller.signal)) {
        bot.note("Stopped.");
      } else {
        bot.note("Failed.");
        error.textContent = describeError(err);
      }
    } finally {
      running = undefined;
      setBusy(false);
    }
  }
}

/** One bot turn in the conversation log, filled in as the stream goes. */
function createBotTurn(model: string, ask: (text: string) => void) {
  const item = element("li", "turn-bot");
  const reasoning = element("details", "reasoning");
  reasoning.open = true;
  reasoning.hidden = true;
  const reasoningText = element("div", "reasoning-text");
  reasoning.append(element("summary", undefined, "Reasoning"), reasoningText);
  const answer = element("div", "answer");
  const followUps = element("div", "follow-ups");
  const meta = element("div", "meta");
  item.append(element("span", "who", `Bot · ${model}`), reasoning, answer, followUps, meta);
  item.setAttribute("aria-busy", "true");

  let lastMessage = "";
  const streamed = new Set<string>();
  const addText = (messageId: string, text: string) => {
    // A new message id starts another answer message: keep them apart.
    if (messageId !== lastMessage && answer.textContent !== "") answer.append("\n\n");
    lastMessage = messageId;
    answer.append(text);
  };

  return {
    item,
    apply(event: ChatStreamResponse["event"]): void {
      switch (event.case) {
        case "delta":
          if (event.value.reasoning !== "") {
            reasoning.hidden = false;
            reasoningText.append(event.value.reasoning);
          }
          if (event.value.text !== "") {
            streamed.add(event.value.messageId);
            addText(event.value.messageId, event.value.text);
          }
          break;
        case "message": {
          const m = event.value;
          if (m.type === "answer" && !streamed.has(m.id)) {
            // A bot that sent no deltas: the completed message carries the answer.
            if (m.reasoning !== "" && reasoningText.textContent === "") {
              reasoning.hidden = false;
              reasoningText.append(m.reasoning);
            }
            addText(m.id, m.content);
          } else if (m.type === "follow_up") {
            const button = element("button", undefined, m.content);
            button.type = "button";
            button.title = "Ask this";
            button.addEventListener("click", () => ask(m.content));
            followUps.append(button);
          }
          break;
        }
        case "requiresAction": {
          const names = event.value.toolCalls.map((c) => c.name || c.type).join(", ");
          meta.textContent = `The bot asks for tool outputs (${names}); the playground does not run tools.`;
          item.removeAttribute("aria-busy");
          break;
        }
        case "completed": {
          const tokens = event.value.usage?.tokenCount;
          meta.textContent = tokens === undefined ? "Done." : `Done · ${tokens} tokens`;
          item.removeAttribute("aria-busy");
          break;
        }
        default:
          break;
      }
    },
    note(text: string): void {
      meta.textContent = text;
      item.removeAttribute("aria-busy");
    },
  };
}
