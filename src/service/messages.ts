import { type ContentItem, type EnterMessage, objectString } from "../coze/chat-types.js";
import type { FilesApi } from "../coze/files.js";
import type { CallTrace } from "../coze/http.js";
import {
  type ChatMessage,
  type InlineData,
  type MediaPart,
  Role,
} from "../gen/cozegateway/v1/chat_pb.js";
import { invalidArgument } from "./errors.js";

/** Coze accepts at most 100 `additional_messages` (coze-api.md §4.1). */
export const maxMessages = 100;

/**
 * Most inline files (`InlineData`, REST `data:` URLs) one request may carry: each is one upload
 * to Coze before the turn, so without a cap one small body could fan out into thousands of uploads
 * (issue #13). Files beyond it go by URL or Coze file id.
 */
export const maxInlineFiles = 10;

/** Most bytes the inline files of one request may hold in all, decoded: 20 MiB. */
export const maxInlineBytes = 20 * 1024 * 1024;

type Media = Extract<ContentItem, { type: "image" | "file" | "audio" }>;

/** Where inline files go, and the call's signal and trace. */
export interface MessageOptions {
  files: FilesApi;
  signal?: AbortSignal;
  trace?: CallTrace;
}

/**
 * The Coze file id of an inline file (uploaded already, or a stand-in while checking); `field`
 * names its data (`messages[0].parts[1].image.data`).
 */
type FileIdOf = (data: InlineData, type: Media["type"], field: string) => string;

/**
 * Turns the caller's messages into Coze `additional_messages`.
 *
 * - Coze has no system role. System messages are never dropped: their texts, in order and
 *   joined by a blank line, are put before the text of the first user message that is sent.
 * - Only the last {@link maxMessages} user and assistant messages are sent (Coze's limit); the
 *   system text still goes into the first of those.
 * - Text-only messages go as `text`; messages with images, files or audio go as
 *   `object_string` with one text item (several text parts are joined by a newline). Inline data
 *   is uploaded to Coze first and referenced by file id; the messages are checked in full before
 *   anything is uploaded, so a request that is refused uploads nothing. At most
 *   {@link maxInlineFiles} inline files of {@link maxInlineBytes} bytes in all are taken.
 * - The last message must be a user message: it is the turn's input.
 *
 * @throws GatewayError `invalid_argument` naming the field (`messages[2].role`, …).
 */
export async function toCozeMessages(
  messages: readonly ChatMessage[],
  options: MessageOptions,
): Promise<EnterMessage[]> {
  const uploads: { data: InlineData; type: Media["type"] }[] = [];
  let bytes = 0;
  const checked = mapMessages(messages, (data, type, field) => {
    bytes += data.data.length;
    if (uploads.length >= maxInlineFiles) {
      throw invalidArgument(
        field,
        `is inline file ${uploads.length + 1} of the request, which may carry ${maxInlineFiles}; send more files by URL or Coze file id`,
      );
    }
    if (bytes > maxInlineBytes) {
      throw invalidArgument(
        field,
        `takes the request's inline files over ${maxInlineBytes} bytes (20 MiB) in all; send large files by URL or Coze file id`,
      );
    }
    uploads.push({ data, type });
    return "";
  });
  if (uploads.length === 0) return checked;
  const ids = new Map<InlineData, string>();
  for (const { data, type } of uploads) {
    const uploaded = await options.files.upload({
      data: data.data,
      fileName: data.fileName || `${type}${extensionOf(data.mimeType)}`,
      contentType: data.mimeType || undefined,
      signal: options.signal,
      trace: options.trace,
    });
    ids.set(data, uploaded.id);
  }
  return mapMessages(messages, (data) => ids.get(data) as string);
}

/**
 * {@link toCozeMessages} for messages without inline data ({@link hasInlineData} false): nothing
 * to upload, so it answers at once (the common case, issue #6).
 *
 * @throws TypeError when a message does carry inline data.
 */
export function toCozeMessagesNow(messages: readonly ChatMessage[]): EnterMessage[] {
  return mapMessages(messages, () => {
    throw new TypeError("inline data must be uploaded: use toCozeMessages");
  });
}

/** Whether a message carries inline file data (uploaded per channel before the turn). */
export function hasInlineData(messages: readonly ChatMessage[]): boolean {
  for (const m of messages) {
    for (const p of m.parts) {
      const k = p.kind;
      if (
        (k.case === "image" || k.case === "file" || k.case === "audio") &&
        k.value.source.case === "data"
      ) {
        return true;
      }
    }
  }
  return false;
}

/** The mapping of {@link toCozeMessages}, with inline files named by `fileIdOf`. */
function mapMessages(messages: readonly ChatMessage[], fileIdOf: FileIdOf): EnterMessage[] {
  const system: string[] = [];
  const turns: { index: number; message: ChatMessage }[] = [];
  for (let index = 0; index < messages.length; index++) {
    const message = messages[index] as ChatMessage;
    if (message.role === Role.SYSTEM) {
      const text = plainText(message, index, "system");
      if (text !== "") system.push(text);
    } else if (message.role === Role.USER || message.role === Role.ASSISTANT) {
      turns.push({ index, message });
    } else {
      throw invalidArgument(
        `messages[${index}].role`,
        "must be ROLE_USER, ROLE_ASSISTANT or ROLE_SYSTEM",
      );
    }
  }
  const last = turns.at(-1);
  if (!last) throw invalidArgument("messages", "needs at least one user message");
  if (last.message.role !== Role.USER) {
    throw invalidArgument(
      `messages[${last.index}].role`,
      "the last message must be a user message",
    );
  }
  const kept = turns.length > maxMessages ? turns.slice(-maxMessages) : turns;
  let prefix = system.length > 0 ? system.join("\n\n") : undefined;
  const out: EnterMessage[] = [];
  for (const { index, message } of kept) {
    if (message.role === Role.ASSISTANT) {
      out.push({
        role: "assistant",
        type: "answer",
        content: plainText(message, index, "assistant"),
        contentType: "text",
      });
      continue;
    }
    const items = userItems(message, index, fileIdOf);
    if (prefix !== undefined) {
      const text = items.find((i) => i.type === "text");
      if (text && text.type === "text") text.text = `${prefix}\n\n${text.text}`;
      else items.unshift({ type: "text", text: prefix });
      prefix = undefined;
    }
    const media = items.filter((i) => i.type !== "text");
    if (media.length === 0) {
      const text = items[0];
      out.push({
        role: "user",
        content: text?.type === "text" ? text.text : "",
        contentType: "text",
      });
    } else {
      out.push({ role: "user", content: objectString(items), contentType: "object_string" });
    }
  }
  return out;
}

function plainText(message: ChatMessage, index: number, role: string): string {
  const texts: string[] = [];
  if (message.content !== "") texts.push(message.content);
  message.parts.forEach((part, p) => {
    if (part.kind.case === "text") texts.push(part.kind.value);
    else if (part.kind.case !== undefined) {
      throw invalidArgument(
        `messages[${index}].parts[${p}]`,
        `a ${role} message can only hold text`,
      );
    }
  });
  const text = texts.join("\n");
  if (text === "" && role === "assistant") {
    throw invalidArgument(`messages[${index}].content`, "is empty");
  }
  return text;
}

function userItems(message: ChatMessage, index: number, fileIdOf: FileIdOf): ContentItem[] {
  const texts: string[] = message.content === "" ? [] : [message.content];
  const media: Media[] = [];
  for (const [p, part] of message.parts.entries()) {
    const field = `messages[${index}].parts[${p}]`;
    const kind = part.kind;
    switch (kind.case) {
      case "text":
        if (kind.value !== "") texts.push(kind.value);
        break;
      case "image":
      case "file":
      case "audio":
        media.push(mediaItem(kind.case, kind.value, field, fileIdOf));
        break;
      default:
        throw invalidArgument(field, "is empty");
    }
  }
  if (texts.length === 0 && media.length === 0) {
    throw invalidArgument(`messages[${index}].content`, "is empty");
  }
  const items: ContentItem[] = [];
  if (texts.length > 0) items.push({ type: "text", text: texts.join("\n") });
  items.push(...media);
  return items;
}

function mediaItem(type: Media["type"], part: MediaPart, field: string, fileIdOf: FileIdOf): Media {
  const source = part.source;
  switch (source.case) {
    case "url": {
      let url: URL;
      try {
        url = new URL(source.value);
      } catch {
        throw invalidArgument(`${field}.${type}.url`, "is not a valid URL");
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw invalidArgument(`${field}.${type}.url`, "must be an http(s) URL");
      }
      return { type, fileUrl: url.toString() };
    }
    case "fileId":
      if (!/^\d+$/.test(source.value)) {
        throw invalidArgument(`${field}.${type}.file_id`, "must be a Coze file id (digits)");
      }
      return { type, fileId: source.value };
    case "data":
      if (source.value.data.length === 0) {
        throw invalidArgument(`${field}.${type}.data`, "is empty");
      }
      return { type, fileId: fileIdOf(source.value, type, `${field}.${type}.data`) };
    default:
      throw invalidArgument(`${field}.${type}`, "needs a url, file_id or data");
  }
}

function extensionOf(mime: string): string {
  const sub = /^[a-z]+\/([a-z0-9.+-]+)$/i.exec(mime)?.[1];
  return sub ? `.${sub.replace(/^x-/, "").replace("jpeg", "jpg").replace(/\+.*$/, "")}` : "";
}
