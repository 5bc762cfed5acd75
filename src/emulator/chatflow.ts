import { answer, echoAnswer, type TurnInput } from "./bots.js";
import { workflowName } from "./catalog.js";
import { optionalId, optionalMap, parseMessages, unset } from "./chat-input.js";
import { beginChat, conversationFor } from "./chat-routes.js";
import { playTurn } from "./chat-runner.js";
import { badRequest, type Ctx, notFound, readJson } from "./http-io.js";
import { newId } from "./ids.js";
import { openSse } from "./sse.js";
import type { EmulatorState } from "./state.js";
import type { TokenInfo } from "./tokens.js";
import { debugUrl } from "./workflow-model.js";

/**
 * `POST /v1/workflows/chat` (§5.6): the chatflow answers in the chat SSE format with a space
 * after the colon, Chat objects without `bot_id`, and `done` data `{debug_url}` as recorded
 * (py:tests/testdata/workflows_chat_stream_resp.txt). `conversation_id` is in the body here;
 * an unknown one, or one of another app or `session_name`, is 4002 (§12.2, §16.5).
 * The chatflow echoes the last user message like the echo bot (no follow-ups: the recording has
 * none). Validation: `workflow_id` (4000 missing, 4200 unknown, 4000 not a chatflow), not both
 * `bot_id` and `app_id`, at least one text message (≤50).
 */
export async function handleWorkflowChat(
  state: EmulatorState,
  ctx: Ctx,
  token: TokenInfo,
): Promise<void> {
  const body = await readJson(ctx);
  const workflowId = optionalId(body.workflow_id);
  if (!workflowId) throw badRequest("workflow_id is required");
  const workflow = workflowName(workflowId);
  if (!workflow) throw notFound(`workflow ${workflowId} not found or not published`);
  if (workflow !== "chatflow") throw badRequest(`workflow ${workflowId} is not a chatflow`);
  if (optionalId(body.bot_id) && optionalId(body.app_id)) {
    throw badRequest("bot_id and app_id cannot both be set");
  }
  const messages = parseMessages(body.additional_messages, state.files, {
    max: 50,
    textOnly: true,
  });
  if (messages.length === 0) throw badRequest("additional_messages is required");
  const ext = optionalMap(body.ext, "ext");
  const conversation = conversationFor(state, token, optionalId(body.conversation_id));
  const input: TurnInput = {
    userId: unset(ext.user_id) ? token.clientId : String(ext.user_id),
    history: [...conversation.history],
    messages,
    customVariables: {},
    metaData: {},
    parameters: optionalMap(body.parameters, "parameters"),
  };
  const chat = beginChat(state, conversation, input, { autoSave: true });
  state.stats.workflowRunStarted();
  const doneData = { debug_url: debugUrl({ executeId: newId(), workflowId }, "&execute_mode=2") };
  const sink = openSse(ctx, "chatflow");
  await playTurn(state, chat, answer(echoAnswer(input), []), { sink, emitCreated: true, doneData });
}
