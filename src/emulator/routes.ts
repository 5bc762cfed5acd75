import { handleSpeech, handleTranscription } from "./audio-routes.js";
import { handleListVoices } from "./audio-voices.js";
import {
  handleCancel,
  handleChat,
  handleMessages,
  handleRetrieve,
  handleSubmitToolOutputs,
} from "./chat-routes.js";
import { handleWorkflowChat } from "./chatflow.js";
import { handleRetrieveFile, handleUpload } from "./files.js";
import type { Ctx } from "./http-io.js";
import {
  handleListBots,
  handleListWorkflows,
  handleListWorkspaces,
  handlePublishedBots,
} from "./list-routes.js";
import type { EmulatorState } from "./state.js";
import type { TokenInfo } from "./tokens.js";
import type { EndpointName } from "./types.js";
import {
  handleHistory,
  handleNodeOutput,
  handleResumeRun,
  handleRun,
  handleStreamResume,
  handleStreamRun,
} from "./workflow-routes.js";

/** A matched API route. The token endpoint has no handler here (it is not token-authenticated). */
export interface Route {
  endpoint: EndpointName;
  handle?: (state: EmulatorState, ctx: Ctx, token: TokenInfo) => Promise<void> | void;
}

type Handler = NonNullable<Route["handle"]>;

const fixed: Record<string, Route> = {
  "POST /api/permission/oauth2/token": { endpoint: "token" },
  "POST /v3/chat": { endpoint: "chat", handle: handleChat },
  // GET per spec/docs/go, POST in py/js (§4.4, §9): both are served.
  "GET /v3/chat/retrieve": { endpoint: "chat.retrieve", handle: handleRetrieve },
  "POST /v3/chat/retrieve": { endpoint: "chat.retrieve", handle: handleRetrieve },
  "GET /v3/chat/message/list": {
    endpoint: "chat.messages",
    handle: handleMessages,
  },
  "POST /v3/chat/message/list": {
    endpoint: "chat.messages",
    handle: handleMessages,
  },
  "POST /v3/chat/cancel": { endpoint: "chat.cancel", handle: handleCancel },
  "POST /v3/chat/submit_tool_outputs": {
    endpoint: "chat.submit_tool_outputs",
    handle: handleSubmitToolOutputs,
  },
  "POST /v1/workflow/run": { endpoint: "workflow.run", handle: handleRun },
  "POST /v1/workflow/stream_run": { endpoint: "workflow.stream_run", handle: handleStreamRun },
  "POST /v1/workflow/stream_resume": {
    endpoint: "workflow.stream_resume",
    handle: (s, c) => handleStreamResume(s, c),
  },
  "POST /v1/workflows/resume": {
    endpoint: "workflow.resume",
    handle: (s, c) => handleResumeRun(s, c),
  },
  "POST /v1/workflows/chat": { endpoint: "workflow.chat", handle: handleWorkflowChat },
  "POST /v1/files/upload": { endpoint: "files.upload", handle: (s, c) => handleUpload(s, c) },
  "GET /v1/files/retrieve": {
    endpoint: "files.retrieve",
    handle: (s, c) => handleRetrieveFile(s, c),
  },
  // Audio over REST (§15).
  "POST /v1/audio/speech": { endpoint: "audio.speech", handle: (_s, c) => handleSpeech(c) },
  "POST /v1/audio/transcriptions": {
    endpoint: "audio.transcriptions",
    handle: (_s, c) => handleTranscription(c),
  },
  "GET /v1/audio/voices": { endpoint: "audio.voices", handle: (_s, c) => handleListVoices(c) },
  // Discovery (§13).
  "GET /v1/workspaces": { endpoint: "workspaces.list", handle: handleListWorkspaces },
  "GET /v1/bots": { endpoint: "bots.list", handle: handleListBots },
  "GET /v1/space/published_bots_list": {
    endpoint: "bots.published_list",
    handle: handlePublishedBots,
  },
  "GET /v1/workflows": { endpoint: "workflows.list", handle: handleListWorkflows },
};

const TOKEN_VARIANT = /^\/api\/permission\/oauth2\/(?:account\/[^/]+|enterprise_id\/[^/]+)\/token$/;
const HISTORY = /^\/v1\/workflows\/([^/]+)\/run_histories\/([^/]+)$/;
const NODE = /^\/v1\/workflows\/([^/]+)\/run_histories\/([^/]+)\/execute_nodes\/([^/]+)$/;

/** The route of `method` + `path`, or `undefined` (answered 404). */
export function matchRoute(method: string, path: string): Route | undefined {
  const exact = fixed[`${method} ${path}`];
  if (exact) return exact;
  // Account and enterprise token variants (§2.2); any account/enterprise id is accepted.
  if (method === "POST" && TOKEN_VARIANT.test(path)) return { endpoint: "token" };
  if (method !== "GET") return undefined;
  const node = NODE.exec(path);
  if (node) {
    const [, workflowId = "", executeId = "", nodeUuid = ""] = node.map(decode);
    const handle: Handler = (s, c) => handleNodeOutput(s, c, { workflowId, executeId, nodeUuid });
    return { endpoint: "workflow.node_output", handle };
  }
  const history = HISTORY.exec(path);
  if (history) {
    const [, workflowId = "", executeId = ""] = history.map(decode);
    return {
      endpoint: "workflow.history",
      handle: (s, c) => handleHistory(s, c, workflowId, executeId),
    };
  }
  return undefined;
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
