import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import {
  type ChatMessageSchema,
  type ContentPartSchema,
  Role,
} from "../gen/cozegateway/v1/chat_pb.js";
import { invalidValue } from "./json-checks.js";
import { OpenAiError } from "./openai-error.js";
import type {
  ImageFilePart,
  ImagePart,
  OpenAiMessage,
  RefusalPart,
  TextPart,
} from "./parse-messages.js";
import type { ChatCompletionRequest } from "./parse-request.js";
import { decodeToolCallId } from "./tool-call-id.js";

type MessageInit = MessageInitShape<typeof ChatMessageSchema>;
type PartInit = MessageInitShape<typeof ContentPartSchema>;

/** The fields of a `ChatRequest` the shim sets (`ChatStreamRequest` has the same ones). */
export interface ChatTurnInit {
  model: string;
  userId: string;
  parameters: JsonObject | undefined;
  messages?: MessageInit[];
  conversationId: string;
  metaData?: Record<string, string>;
  chatId?: string;
  toolOutputs?: { toolCallId: string; output: string }[];
}

/** A ChatService request built from an OpenAI request, with what is needed to explain errors. */
export interface ChatPlan {
  init: ChatTurnInit;
  /** For each message sent to the service, the index of the OpenAI message it came from. */
  sourceIndex: number[];
}

/**
 * Maps an OpenAI request to a ChatService turn (bots and chatflows).
 *
 * - Trailing `role: "tool"` messages answer the tool calls of an earlier turn: their ids are
 *   decoded (issue #4 decision 2) and sent as `tool_outputs` with the conversation and chat id
 *   they name; nothing else of the request is sent.
 * - Otherwise system and developer messages go as `ROLE_SYSTEM` (the service folds them into
 *   the first user turn and keeps the last 100 messages: decision 1); user and assistant
 *   messages go in order. Earlier tool exchanges (tool messages, assistant messages that only
 *   carry `tool_calls`) are not replayed: Coze takes no tool messages as history. Nor are
 *   assistant messages without text (`""`, `null`, `[]`: what a front-end keeps of a stopped
 *   turn), which OpenAI accepts and Coze would refuse.
 * - With a conversation to continue, Coze already holds the history: only the messages after
 *   the last assistant message (or from `sendFrom`) are sent (system messages are always sent),
 *   so a chat front-end that resends the whole history does not duplicate it.
 * - `user` becomes the Coze user id; without it the service derives one from the caller's key.
 *
 * @throws OpenAiError 400 naming the field for an unusable tool call id or image URL.
 */
export function toChatPlan(req: ChatCompletionRequest): ChatPlan {
  const { messages } = req;
  const base = { model: req.model, userId: req.user ?? "", parameters: req.parameters };
  let firstTool = messages.length;
  while (firstTool > 0 && messages[firstTool - 1]?.role === "tool") firstTool--;
  if (firstTool < messages.length) return toolOutputsPlan(messages, firstTool, base);

  let skipUntil = -1;
  if (req.sendFrom !== undefined) skipUntil = req.sendFrom - 1;
  else if (req.conversationId !== undefined) {
    skipUntil = messages.findLastIndex((m) => m.role === "assistant");
  }
  const out: MessageInit[] = [];
  const sourceIndex: number[] = [];
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as OpenAiMessage;
    let mapped: MessageInit | undefined;
    switch (m.role) {
      case "system":
      case "developer":
        mapped = textMessage(Role.SYSTEM, m.content);
        break;
      case "user":
        if (i > skipUntil) mapped = userMessage(m.content, i);
        break;
      case "assistant":
        // An assistant message without text (a stopped turn's `""` or `null`, an empty parts
        // array, one that only carried tool calls) is accepted as OpenAI does, and not sent:
        // Coze takes no empty message (issue 16).
        if (i > skipUntil && !isEmpty(m.content)) {
          mapped = textMessage(Role.ASSISTANT, m.content ?? "");
        }
        break;
      case "tool":
        break;
    }
    if (mapped) {
      out.push(mapped);
      sourceIndex.push(i);
    }
  }
  return {
    init: {
      model: base.model,
      userId: base.userId,
      parameters: base.parameters,
      messages: out,
      conversationId: req.conversationId ?? "",
      metaData: req.metadata,
    },
    sourceIndex,
  };
}

function toolOutputsPlan(
  messages: OpenAiMessage[],
  first: number,
  base: Pick<ChatTurnInit, "model" | "userId" | "parameters">,
): ChatPlan {
  let conversationId = "";
  let chatId = "";
  const toolOutputs: { toolCallId: string; output: string }[] = [];
  for (let i = first; i < messages.length; i++) {
    const m = messages[i] as Extract<OpenAiMessage, { role: "tool" }>;
    const param = `messages[${i}].tool_call_id`;
    const ref = decodeToolCallId(m.tool_call_id);
    if (!ref) throw invalidValue(param, "not a tool call id returned by this gateway.");
    if (conversationId === "") {
      conversationId = ref.conversationId;
      chatId = ref.chatId;
    } else if (ref.conversationId !== conversationId || ref.chatId !== chatId) {
      throw invalidValue(param, "belongs to another turn than the tool messages before it.");
    }
    toolOutputs.push({ toolCallId: ref.toolCallId, output: joinText(m.content) });
  }
  return { init: { ...base, conversationId, chatId, toolOutputs }, sourceIndex: [] };
}

/** Whether assistant content holds no text: absent, `null`, `""`, `[]` or only empty parts. */
function isEmpty(content: string | (TextPart | RefusalPart)[] | null | undefined): boolean {
  return content === undefined || content === null || joinText(content) === "";
}

function textMessage(role: Role, content: string | (TextPart | RefusalPart)[]): MessageInit {
  if (typeof content === "string") return { role, content };
  return { role, parts: content.map((p) => ({ kind: { case: "text", value: textOf(p) } })) };
}

function textOf(p: TextPart | RefusalPart): string {
  return p.type === "text" ? p.text : p.refusal;
}

/** The text of string or text-part content; parts are joined by a newline like the service. */
export function joinText(content: string | (TextPart | RefusalPart)[]): string {
  return typeof content === "string" ? content : content.map(textOf).join("\n");
}

function userMessage(
  content: string | (TextPart | ImagePart | ImageFilePart)[],
  index: number,
): MessageInit {
  if (typeof content === "string") return { role: Role.USER, content };
  const parts: PartInit[] = [];
  for (let p = 0; p < content.length; p++) {
    const part = content[p] as TextPart | ImagePart | ImageFilePart;
    switch (part.type) {
      case "text":
        parts.push({ kind: { case: "text", value: part.text } });
        break;
      case "image_url": {
        const source = imageSource(part, `messages[${index}].content[${p}]`);
        parts.push({ kind: { case: "image", value: source } });
        break;
      }
      case "image_file":
        parts.push({
          kind: { case: "image", value: { source: { case: "fileId", value: part.file_id } } },
        });
        break;
    }
  }
  return { role: Role.USER, parts };
}

const dataUrl = /^data:([^;,]*)((?:;[^;,]*)*),/;
const base64Text = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * An image part's source (issue #4 "Content parts"): an http(s) URL goes to Coze by URL; a
 * `data:` URL is decoded here and uploaded to Coze by the service, then referenced by file id.
 */
function imageSource(part: ImagePart, at: string) {
  const url = part.image_url.url;
  const param = `${at}.image_url.url`;
  if (url.startsWith("data:")) {
    const head = dataUrl.exec(url);
    const mime = head?.[1]?.toLowerCase() ?? "";
    if (!head || !mime.startsWith("image/")) {
      throw invalidValue(param, "expected a data URL of an image (data:image/png;base64,…).");
    }
    const payload = url.slice(head[0].length);
    let data: Uint8Array;
    if (head[2]?.toLowerCase().includes(";base64")) {
      if (!base64Text.test(payload)) throw invalidValue(param, "the data is not valid base64.");
      data = Buffer.from(payload, "base64");
    } else {
      try {
        data = Buffer.from(decodeURIComponent(payload), "latin1");
      } catch {
        throw invalidValue(param, "the data is not valid percent-encoding.");
      }
    }
    if (data.length === 0) throw invalidValue(param, "the image data is empty.");
    return { source: { case: "data" as const, value: { data, mimeType: mime } } };
  }
  if (!/^https?:\/\//i.test(url) || !URL.canParse(url)) {
    throw invalidValue(param, "expected an http(s) URL or a data: URL.");
  }
  return { source: { case: "url" as const, value: url } };
}

/**
 * Renames the fields of a service validation error to the OpenAI request's: the service counts
 * the messages it was sent and calls content parts `parts[i]` and images `image`.
 */
export function renameServiceParam(err: OpenAiError, plan: ChatPlan): OpenAiError {
  const param = err.body.param;
  if (err.status !== 400 || param === null) return err;
  if (param.startsWith("tool_outputs")) {
    // The outputs came from the trailing `role: "tool"` messages.
    return new OpenAiError(400, { ...err.body, param: "messages" }, { ...err.headers });
  }
  if (!param.startsWith("messages[")) return err;
  const renamed = param
    .replace(/^messages\[(\d+)\]/, (_, k: string) => {
      return `messages[${plan.sourceIndex[Number(k)] ?? k}]`;
    })
    .replace(".parts[", ".content[")
    .replace(/\.image\.(url|data)$/, ".image_url.url")
    .replace(/\.image\.file_id$/, ".image_url.file_id");
  const message = err.body.message.startsWith(`${param}: `)
    ? `${renamed}: ${err.body.message.slice(param.length + 2)}`
    : err.body.message;
  return new OpenAiError(400, { ...err.body, param: renamed, message }, { ...err.headers });
}
