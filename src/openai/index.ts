export { type OpenAiToolCall, type OpenAiUsage, usageOf } from "./completion-format.js";
export {
  createInterruptReplies,
  type InterruptReplies,
  type InterruptRepliesOptions,
} from "./interrupt-replies.js";
export { OpenAiError, type OpenAiErrorObject, toOpenAiError } from "./openai-error.js";
export {
  createOpenAiDoor,
  createOpenAiHandler,
  type OpenAiDoor,
  type OpenAiHandler,
  type OpenAiHandlerOptions,
  type ServerRefusal,
} from "./openai-handler.js";
export { type ChatCompletionRequest, parseChatCompletionRequest } from "./parse-request.js";
export { parseResponseRequest, type ResponseRequest } from "./parse-response-request.js";
export { decodeResponseId, encodeResponseId, type ResponseRef } from "./response-id.js";
export { decodeToolCallId, encodeToolCallId, type ToolCallRef } from "./tool-call-id.js";
export type { LogFn } from "./turn.js";
