import type OpenAI from "openai";
import type { ChatCompletionMessageParam } from "openai/resources/chat/completions";
import { demoModels } from "../../src/demo.js";
import type { Emulator } from "../../src/emulator/index.js";

/** A chat message as a front-end on the openai SDK keeps it. */
export type Message = ChatCompletionMessageParam;

export const user = (content: string): Message => ({ role: "user", content });
export const assistant = (content: string): Message => ({ role: "assistant", content });

/** What an emulator saw: workflow runs started, and resumes of any kind (stream or not). */
export function runsSeen(emulator: Emulator): { runs: number; resumes: number } {
  const s = emulator.stats();
  const resumes = Object.entries(s.calls)
    .filter(([name]) => name.includes("resume"))
    .reduce((n, [, count]) => n + (count ?? 0), 0);
  return { runs: s.workflowRunsStarted, resumes };
}

/**
 * The assistant's text for `messages` to `model` (default the demo's interrupting workflow), as
 * a front-end gets it, streamed or not.
 */
export async function say(
  client: OpenAI,
  messages: Message[],
  stream = false,
  model: string = demoModels.interrupt,
): Promise<string> {
  if (!stream) {
    const r = await client.chat.completions.create({ model, messages });
    return r.choices[0]?.message.content ?? "";
  }
  const s = await client.chat.completions.create({ model, messages, stream: true });
  let text = "";
  for await (const c of s) text += c.choices[0]?.delta.content ?? "";
  return text;
}

/**
 * A front-end's conversation: each turn sends the whole history plus the new user message (after
 * a system message from `system`, when given), and keeps the assistant's answer in the history,
 * as LobeChat and Open WebUI do.
 */
export function conversation(
  client: OpenAI,
  options: { stream?: boolean; system?: () => string; model?: string } = {},
) {
  const history: Message[] = [];
  return {
    history,
    async send(text: string): Promise<string> {
      history.push(user(text));
      const head: Message[] = options.system ? [{ role: "system", content: options.system() }] : [];
      const answer = await say(client, [...head, ...history], options.stream, options.model);
      history.push(assistant(answer));
      return answer;
    },
  };
}
