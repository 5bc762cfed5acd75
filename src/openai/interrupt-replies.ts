import { createHash } from "node:crypto";
import type { Caller } from "../service/index.js";
import type { StateStore } from "../state/index.js";
import type { AnswerFormat, FinishReason } from "./answer-format.js";
import type { CompletionExtras } from "./completion-format.js";
import { OpenAiError } from "./openai-error.js";
import type { OpenAiMessage } from "./parse-messages.js";
import type { ChatCompletionRequest } from "./parse-request.js";
import type { ErrorHook, LogFn, Turn } from "./turn.js";

/** What the replies need of the state store: values with a time to live. */
export type ReplyStore = Pick<StateStore, "get" | "set" | "setIfAbsent" | "delete">;

/** Options of {@link createInterruptReplies}. */
export interface InterruptRepliesOptions {
  /** The gateway's state store: in memory, or Redis shared by the replicas. */
  store: ReplyStore;
  /** How long a question waits for its reply, in ms; 0 turns replies off. */
  ttlMs: number;
  /** Milliseconds since the epoch (the state store's clock). Default `Date.now`. */
  now?: () => number;
}

/**
 * Resuming a run by replying (issue 16, docs/clients.md "Answering a workflow's question"): a
 * chat front-end sends the whole history back, so the gateway remembers, after a turn that ended
 * with a workflow's question (or a chatflow's answer), what the next reply to it continues, under
 * a digest of the key, the model, the `user` and the history up to that assistant message.
 */
export interface InterruptReplies {
  /**
   * The turn of a request to a model of `kind`, ready to run: when its history answers a
   * remembered question, that interrupt is taken (once: of two replies at once, exactly one
   * takes it; the other, like any later reply, starts a new run) and the turn resumes it
   * (`resume`), or for a chatflow continues its conversation (`conversationId`). The returned
   * turn remembers what it ends with before its answer is written. Other turns come back as
   * they are. A failing store is logged and skipped: the request then starts a new run. Never
   * throws.
   */
  prepare(turn: Turn, kind: string): Promise<Turn>;
}

/** What a reply continues: a workflow's interrupt or a chatflow's conversation. */
type Pending =
  | { kind: "interrupt"; eventId: string; type: number; executeId: string; channel: string }
  | { kind: "conversation"; conversationId: string };

/** A {@link Pending} as stored: `at` is when it was stored, in ms since the epoch. */
type Stored = Pending & { at: number };

/** What a turn wrote last: its text, how it finished, and the finish's extension fields. */
interface Seen {
  text: string;
  finish: FinishReason | undefined;
  extras: CompletionExtras | undefined;
}

const workflowKinds = new Set(["workflow", "workflow_async"]);

/** Creates the replies on `options.store`; with `ttlMs` 0, `prepare` leaves every turn alone. */
export function createInterruptReplies(options: InterruptRepliesOptions): InterruptReplies {
  const { store, ttlMs } = options;
  const now = options.now ?? Date.now;

  /**
   * Takes what is stored under `key` (of `kind`, and named `only` when given), once, or
   * `undefined` when there is none.
   */
  async function take(
    key: string,
    kind: Pending["kind"],
    log: LogFn,
    only?: string,
  ): Promise<Stored | undefined> {
    let raw: string | undefined;
    try {
      raw = await store.get(key);
    } catch (err) {
      return storeFailed(log, err, "read");
    }
    const found = parseStored(raw);
    if (found === undefined || found.kind !== kind || found.at + ttlMs <= now()) return undefined;
    if (only !== undefined && pendingId(found) !== only) return undefined;
    let won: boolean;
    try {
      // Two replies at once may both read it: only the one that marks it taken resumes, the
      // other is a new message, as is a reply that comes after it was taken. The mark lasts as
      // long as the entry could, in case deleting the entry fails.
      const left = found.at + ttlMs - now();
      won = await store.setIfAbsent(`${key}:${pendingId(found)}`, "1", left);
    } catch (err) {
      return storeFailed(log, err, "claim");
    }
    if (!won) return undefined;
    try {
      await store.delete(key);
    } catch (err) {
      storeFailed(log, err, "delete");
    }
    return found;
  }

  /** Stores what `turn` ended with, if its reply can continue it. Never rejects. */
  async function remember(turn: Turn, kind: string, seen: Seen, tenant: string): Promise<void> {
    const pending = pendingOf(kind, seen, turn);
    if (pending === undefined || seen.text.trim() === "") return;
    const history = entriesOf(turn.request.messages);
    history.push(["assistant", seen.text.trim()]);
    const key = keyOf(tenant, turn.request, history);
    const value: Stored = { ...pending, at: now() };
    try {
      await store.set(key, JSON.stringify(value), ttlMs);
    } catch (err) {
      storeFailed(turn.log, err, "write");
    }
  }

  return {
    async prepare(turn, kind) {
      const workflow = workflowKinds.has(kind);
      if (ttlMs === 0 || (!workflow && kind !== "chatflow")) return turn;
      const { request } = turn;
      // A chatflow the caller names a conversation of (or answers tool calls in) is its own.
      if (
        !workflow &&
        (request.conversationId !== undefined || request.messages.at(-1)?.role === "tool")
      )
        return turn;
      const tenant = tenantOf(turn.caller);
      let next = request;
      const point = replyPoint(request.messages);
      if (point >= 0) {
        const key = keyOf(tenant, request, entriesOf(request.messages.slice(0, point + 1)));
        // An explicit `event_id` resumes as it says; the same question, remembered, is then
        // answered too, and a reply replayed later starts a new run instead of failing at Coze.
        const explicit = request.resume?.eventId;
        const kindOf = workflow ? "interrupt" : "conversation";
        const found = await take(key, kindOf, turn.log, explicit);
        if (found?.kind === "interrupt" && explicit === undefined) {
          const { eventId, type, executeId, channel } = found;
          next = { ...request, resume: { eventId, interruptType: type, executeId, channel } };
        } else if (found?.kind === "conversation") {
          next = { ...request, conversationId: found.conversationId };
        }
      }
      const seen: Seen = { text: "", finish: undefined, extras: undefined };
      return {
        ...turn,
        request: next,
        rename: next === request ? turn.rename : noRetry(turn.rename),
        format: observed(turn.format, seen),
        settle: () => remember(turn, kind, seen, tenant),
      };
    },
  };
}

/**
 * `rename`, and then `x-should-retry: false` on every error: the reply took what it answers, so
 * an SDK's own retry would find nothing and start a new run; the caller sees the error instead.
 */
function noRetry(rename: ErrorHook | undefined): ErrorHook {
  return (err) => {
    const e = rename ? rename(err) : err;
    return new OpenAiError(e.status, e.body, { ...e.headers, "x-should-retry": "false" });
  };
}

/** What the reply to a turn that ended as `seen` continues, if anything. */
function pendingOf(kind: string, seen: Seen, turn: Turn): Pending | undefined {
  const extras = seen.extras ?? {};
  if (kind === "chatflow") {
    const conversationId = extras.conversation_id;
    if (seen.finish !== "stop" || typeof conversationId !== "string" || conversationId === "")
      return undefined;
    return { kind: "conversation", conversationId };
  }
  const i = extras.interrupt as { event_id?: unknown; type?: unknown } | undefined;
  if (typeof i?.event_id !== "string" || i.event_id === "") return undefined;
  return {
    kind: "interrupt",
    eventId: i.event_id,
    type: typeof i.type === "number" ? i.type : 0,
    executeId: typeof extras.execute_id === "string" ? extras.execute_id : "",
    // The channel that served the run: its interrupt is resumed there (the run lives there).
    channel: turn.context?.usage?.channel ?? "",
  };
}

/**
 * `format`, noting in `seen` the text the caller is given (what a front-end sends back as the
 * assistant message) and how the answer finished.
 */
function observed(format: AnswerFormat, seen: Seen): AnswerFormat {
  return {
    unary(message, finish, usage, extras, ids) {
      seen.text = message.content ?? "";
      seen.finish = finish;
      seen.extras = extras;
      return format.unary(message, finish, usage, extras, ids);
    },
    stream() {
      const inner = format.stream();
      return {
        identify: (ids) => inner.identify(ids),
        announce: (extras) => inner.announce(extras),
        start: () => inner.start(),
        content(text) {
          seen.text += text;
          return inner.content(text);
        },
        delta(content, reasoning) {
          seen.text += content;
          return inner.delta(content, reasoning);
        },
        toolCalls: (calls) => inner.toolCalls(calls),
        finish(reason, extras, usage) {
          seen.finish = reason;
          seen.extras = extras;
          return inner.finish(reason, extras, usage);
        },
        fail: (err) => inner.fail(err),
      };
    },
  };
}

/** A history as the digest sees it: `[role, text]` of each user and assistant message. */
type Entry = [role: "user" | "assistant", text: string];

/**
 * The user and assistant messages with text, trimmed. System and developer messages are left
 * out (a workflow never reads them, and front-ends put the date in them), so are tool messages
 * and messages without text (a stopped turn's empty assistant message).
 */
function entriesOf(messages: readonly OpenAiMessage[]): Entry[] {
  const out: Entry[] = [];
  for (const m of messages) {
    if (m.role !== "user" && m.role !== "assistant") continue;
    const text = textOf(m.content).trim();
    if (text !== "") out.push([m.role, text]);
  }
  return out;
}

function textOf(content: OpenAiMessage["content"]): string {
  if (content === undefined || content === null) return "";
  if (typeof content === "string") return content;
  return content.map(partText).join("\n");
}

function partText(p: Exclude<OpenAiMessage["content"], string | null | undefined>[number]) {
  if (p.type === "text") return p.text;
  if (p.type === "refusal") return p.refusal;
  return p.type === "image_url" ? `[image ${p.image_url.url}]` : `[file ${p.file_id}]`;
}

/**
 * The index of the assistant message a request replies to: the last one with text, when a user
 * message follows it; else -1.
 */
function replyPoint(messages: readonly OpenAiMessage[]): number {
  let sawUser = false;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as OpenAiMessage;
    if (m.role === "user") sawUser = true;
    else if (m.role === "assistant" && textOf(m.content).trim() !== "") return sawUser ? i : -1;
  }
  return -1;
}

/**
 * The state key of a history: a SHA-256 digest of the key's tenant (its Coze session name,
 * derived from the key and the server secret: another key's identical history is another
 * entry), the model, the request's `user` and the history.
 */
function keyOf(tenant: string, request: ChatCompletionRequest, history: Entry[]): string {
  const digest = createHash("sha256")
    .update(JSON.stringify(["reply v1", tenant, request.model, request.user ?? null, history]))
    .digest("base64url");
  return `ir:${digest}`;
}

function tenantOf(caller: Caller): string {
  return caller.tenant.sessionName ?? `name:${caller.name}`;
}

function pendingId(p: Pending): string {
  return p.kind === "interrupt" ? p.eventId : p.conversationId;
}

/** A stored value, or `undefined` for anything else (another version, a damaged value). */
function parseStored(raw: string | undefined): Stored | undefined {
  if (raw === undefined) return undefined;
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null || typeof v.at !== "number") return undefined;
  if (v.kind === "interrupt" && typeof v.eventId === "string" && typeof v.type === "number") {
    const executeId = typeof v.executeId === "string" ? v.executeId : "";
    const channel = typeof v.channel === "string" ? v.channel : "";
    return { kind: "interrupt", eventId: v.eventId, type: v.type, executeId, channel, at: v.at };
  }
  if (v.kind === "conversation" && typeof v.conversationId === "string") {
    return { kind: "conversation", conversationId: v.conversationId, at: v.at };
  }
  return undefined;
}

/** Logs a failed store call (by its error's name and code only) and gives `undefined`. */
function storeFailed(log: LogFn, err: unknown, step: string): undefined {
  const code = (err as { code?: unknown }).code;
  log("warn", `interrupt replies: the state store failed to ${step}; a reply starts a new run`, {
    error: err instanceof Error ? err.name : typeof err,
    code: typeof code === "string" ? code : undefined,
  });
  return undefined;
}
