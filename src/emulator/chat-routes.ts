import { answer, scriptFor, type TurnInput, type TurnScript } from "./bots.js";
import { botName } from "./catalog.js";
import { optionalId, optionalMap, parseMessages } from "./chat-input.js";
import {
  type ChatRecord,
  type Conversation,
  chatWire,
  isTerminal,
  messageWire,
} from "./chat-model.js";
import { cancelChat, playTurn } from "./chat-runner.js";
import {
  ApiError,
  badRequest,
  type Ctx,
  conversationNotFound,
  notFound,
  queryParam,
  readJson,
  sendData,
} from "./http-io.js";
import { newId } from "./ids.js";
import { openSse } from "./sse.js";
import { type EmulatorState, remember } from "./state.js";
import { ownerOf, sameOwner, type TokenOwner } from "./tokens.js";

/** A conversation that already runs a chat (docs:chat_v3.md:37, §1.5). */
const busy = () =>
  new ApiError(4016, "The conversation already has a chat in progress; wait for it to finish.");

/**
 * `POST /v3/chat` (§4.1): `conversation_id` in the query (empty = absent, §1.6); a new
 * conversation when absent, 4002 when unknown or another app's or session's (§12.2), 4016 while
 * another chat of it runs. Stream: the SSE of §4.5. Non-stream: the Chat object in `in_progress`
 * at once, completed in the background through `in_progress` (§4.4: py polls only while
 * `in_progress`).
 */
export async function handleChat(state: EmulatorState, ctx: Ctx, token: TokenOwner): Promise<void> {
  const body = await readJson(ctx);
  const botId = optionalId(body.bot_id);
  if (!botId) throw badRequest("bot_id is required");
  const bot = botName(botId);
  if (!bot) throw notFound(`bot ${botId} not found or not published to the API channel`);
  const userId = optionalId(body.user_id);
  if (!userId) throw badRequest("user_id is required");
  const stream = body.stream === true;
  const autoSave = body.auto_save_history !== false;
  // docs:chat_v3.md:46: auto_save_history must be true when stream is false.
  if (!stream && !autoSave) throw badRequest("auto_save_history must be true when stream is false");
  const messages = parseMessages(body.additional_messages, state.files, { max: 100 });
  const customVariables = optionalMap(body.custom_variables, "custom_variables");
  const metaData = optionalMap(body.meta_data, "meta_data");
  const parameters = optionalMap(body.parameters, "parameters");
  // Everything is validated before a new conversation is created.
  const conversation = conversationFor(state, token, queryParam(ctx, "conversation_id"));
  const input: TurnInput = {
    userId,
    history: [...conversation.history],
    messages,
    customVariables,
    metaData,
    parameters,
  };
  const chat = beginChat(state, conversation, input, { botId, autoSave });
  state.stats.chatCreated();
  await startTurn(state, ctx, chat, scriptFor(bot, input), stream, true);
}

/** `GET|POST /v3/chat/retrieve?conversation_id&chat_id` (§4.4, both methods, §9). */
export async function handleRetrieve(
  state: EmulatorState,
  ctx: Ctx,
  token: TokenOwner,
): Promise<void> {
  sendData(ctx, chatWire(await chatFrom(state, ctx, token, "query")));
}

/** `GET /v3/chat/message/list?conversation_id&chat_id`: an array of Messages (§4.4). */
export async function handleMessages(
  state: EmulatorState,
  ctx: Ctx,
  token: TokenOwner,
): Promise<void> {
  const chat = await chatFrom(state, ctx, token, "query");
  sendData(
    ctx,
    chat.messages.map((m) => messageWire(chat, m)),
  );
}

/**
 * `POST /v3/chat/cancel` `{conversation_id, chat_id}`: the chat ends `canceled`; 4104 when it
 * already completed, failed or was canceled (§1.5). A chat waiting for tool outputs
 * (`requires_action`) can still be canceled: nothing else would ever end it.
 */
export async function handleCancel(
  state: EmulatorState,
  ctx: Ctx,
  token: TokenOwner,
): Promise<void> {
  const chat = await chatFrom(state, ctx, token, "body");
  if (isTerminal(chat.status)) {
    throw new ApiError(4104, "The chat has already finished and cannot be canceled.");
  }
  cancelChat(chat);
  sendData(ctx, chatWire(chat));
}

/**
 * `POST /v3/chat/submit_tool_outputs?conversation_id&chat_id` `{tool_outputs, stream}` (§4.4):
 * the chat must be `requires_action` and every pending tool call answered (4000 otherwise); a
 * chat created with `auto_save_history:false` is refused with 5000 (docs:chat_v3.md:46). The
 * same chat then answers `The tool said: <output>`; the stream starts at `in_progress`.
 */
export async function handleSubmitToolOutputs(
  state: EmulatorState,
  ctx: Ctx,
  token: TokenOwner,
): Promise<void> {
  const body = await readJson(ctx);
  const chat = lookupChat(
    state,
    token,
    queryParam(ctx, "conversation_id"),
    queryParam(ctx, "chat_id"),
  );
  const pending = chat.requiredAction;
  if (chat.status !== "requires_action" || !pending) {
    throw badRequest("the chat is not waiting for tool outputs");
  }
  if (!chat.autoSaveHistory) {
    throw new ApiError(5000, "submit_tool_outputs needs a chat created with auto_save_history");
  }
  const outputs = Array.isArray(body.tool_outputs) ? (body.tool_outputs as unknown[]) : [];
  const answers = new Map<string, string>();
  for (const raw of outputs) {
    const o = (raw ?? {}) as Record<string, unknown>;
    if (typeof o.tool_call_id !== "string" || typeof o.output !== "string") {
      throw badRequest("tool_outputs items need tool_call_id and output strings");
    }
    if (!pending.some((call) => call.id === o.tool_call_id)) {
      throw badRequest(`tool_call_id ${o.tool_call_id} is not a pending tool call`);
    }
    answers.set(o.tool_call_id, o.output);
  }
  if (pending.some((call) => !answers.has(call.id))) {
    throw badRequest("every pending tool call needs an output");
  }
  if (chat.conversation.activeChatId !== undefined) throw busy();
  chat.requiredAction = undefined;
  chat.completedAt = undefined;
  chat.conversation.activeChatId = chat.id;
  const said = pending.map((call) => answers.get(call.id)).join("\n");
  await startTurn(state, ctx, chat, answer(`The tool said: ${said}`), body.stream === true, false);
}

/**
 * The conversation of `id`, or a new one owned by `token` when `id` is absent. 4002 when it is
 * unknown (§16.5) or belongs to another app or `session_name` (§12.2): both read the same, so a
 * session cannot probe for other sessions' ids.
 */
export function conversationFor(
  state: EmulatorState,
  token: TokenOwner,
  id: string | undefined,
): Conversation {
  if (id === undefined) {
    const fresh: Conversation = { id: newId(), owner: ownerOf(token), sectionId: "", history: [] };
    fresh.sectionId = fresh.id;
    remember(state.conversations, fresh.id, fresh);
    return fresh;
  }
  const found = state.conversations.get(id);
  if (!found || !owns(token, found)) throw conversationNotFound(id);
  return found;
}

/**
 * Whether `token` may see `conversation` and its chats: same app (or account, or enterprise),
 * same session or none (§12.2).
 */
function owns(token: TokenOwner, conversation: Conversation): boolean {
  return sameOwner(conversation.owner, token);
}

/**
 * Creates a chat in `conversation` and marks it running there (4016 when another one runs).
 * With history saving on, this turn's messages join the conversation history now.
 */
export function beginChat(
  state: EmulatorState,
  conversation: Conversation,
  input: TurnInput,
  options: { botId?: string; autoSave: boolean },
): ChatRecord {
  if (conversation.activeChatId !== undefined) throw busy();
  const received = [...input.history, ...input.messages];
  const chat: ChatRecord = {
    id: newId(),
    conversation,
    createdAt: Math.floor(state.now() / 1000),
    status: "created",
    lastError: { code: 0, msg: "" },
    usage: { token_count: 0, output_count: 0, input_count: 0 },
    metaData: input.metaData,
    messages: [],
    autoSaveHistory: options.autoSave,
    inputChars: received.reduce((n, m) => n + m.content.length, 0),
    abort: new AbortController(),
  };
  if (options.botId !== undefined) chat.botId = options.botId;
  remember(state.chats, chat.id, chat);
  conversation.activeChatId = chat.id;
  if (options.autoSave) {
    for (const { role, type, content_type, content } of input.messages) {
      conversation.history.push({ role, type, content_type, content });
    }
  }
  return chat;
}

async function startTurn(
  state: EmulatorState,
  ctx: Ctx,
  chat: ChatRecord,
  script: TurnScript,
  stream: boolean,
  emitCreated: boolean,
): Promise<void> {
  if (stream) {
    await playTurn(state, chat, script, {
      sink: openSse(ctx, "chat"),
      emitCreated,
      doneData: "[DONE]",
    });
    return;
  }
  chat.status = "in_progress";
  sendData(ctx, chatWire(chat));
  // The turn goes on after the answer, like the real service (§4.4).
  playTurn(state, chat, script, { emitCreated: false, doneData: "[DONE]" }).catch(() =>
    cancelChat(chat),
  );
}

async function chatFrom(
  state: EmulatorState,
  ctx: Ctx,
  token: TokenOwner,
  where: "query" | "body",
): Promise<ChatRecord> {
  // Both places are read: py/js post retrieve with query only, cancel sends a JSON body (§4.4).
  const body = ctx.req.method === "GET" ? {} : await readJson(ctx);
  const pick = (name: string) =>
    where === "query"
      ? (queryParam(ctx, name) ?? optionalId(body[name]))
      : (optionalId(body[name]) ?? queryParam(ctx, name));
  return lookupChat(state, token, pick("conversation_id"), pick("chat_id"));
}

/**
 * The chat `chatId` of conversation `conversationId`: 4002 when the conversation is unknown
 * (§16.5) or not `token`'s (§12.2: a chat belongs to its conversation's owner), 4200 when it has
 * no such chat.
 */
function lookupChat(
  state: EmulatorState,
  token: TokenOwner,
  conversationId: string | undefined,
  chatId: string | undefined,
): ChatRecord {
  if (!conversationId || !chatId) throw badRequest("conversation_id and chat_id are required");
  const chat = state.chats.get(chatId);
  // The chat's own link first: its conversation may have left the bounded store before it did.
  const conversation =
    chat?.conversation.id === conversationId
      ? chat.conversation
      : state.conversations.get(conversationId);
  if (!conversation || !owns(token, conversation)) throw conversationNotFound(conversationId);
  if (!chat || chat.conversation !== conversation) throw notFound(`chat ${chatId} not found`);
  return chat;
}
