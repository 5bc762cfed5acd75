export { type OpenAiToolCall, type OpenAiUsage, usageOf } from "./completion-format.js";
export {
  createInterruptReplies,
  type InterruptReplies,
  type InterruptRepliesOptions,
} from "./interrupt-replies.js";
export { createOpenAiDoor, type OpenAiDoor, type ServerRefusal } from "./openai-door.js";
export { OpenAiError, type OpenAiErrorObject, toOpenAiError } from "./openai-error.js";
export {
  createOpenAiHandler,
  type OpenAiHandler,
  type OpenAiHandlerOptions,
} from "./openai-handler.js";
export { type ChatCompletionRequest, parseChatCompletionRequest } from "./parse-request.js";
export { parseResponseRequest, type ResponseRequest } from "./parse-response-request.js";
export { decodeResponseId, encodeResponseId, type ResponseRef } from "./response-id.js";
export { decodeToolCallId, encodeToolCallId, type ToolCallRef } from "./tool-call-id.js";
export type { LogFn } from "./turn.js";
