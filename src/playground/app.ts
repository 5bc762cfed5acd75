// The playground page's script, bundled by esbuild into dist/playground/app.js. It runs in the
// browser and imports nothing of the gateway but the generated clients (src/gen).
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ChatService } from "../gen/cozegateway/v1/chat_pb.js";
import { type Model, ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { WorkflowService } from "../gen/cozegateway/v1/workflow_pb.js";
import { createChatPanel } from "./web/chat-panel.js";
import { byId, describeError } from "./web/dom.js";
import { createKeyStore } from "./web/key-store.js";
import { fetchSuggestedModels, fillDatalist, fillSelect, modelChoices } from "./web/models.js";
import { createWorkflowPanel } from "./web/workflow-panel.js";

const keys = createKeyStore();

/** Adds the key typed into the page to every call; the key never goes into a URL. */
const auth: Interceptor = (next) => (req) => {
  const key = keys.get();
  if (key !== "") req.header.set("Authorization", `Bearer ${key}`);
  return next(req);
};

// The Connect protocol over fetch (HTTP/1.1 is enough: server streams work over it), to the
// gateway that served this page.
const transport = createConnectTransport({ baseUrl: location.origin, interceptors: [auth] });

const keyForm = byId("key-form", HTMLFormElement);
const keyInput = byId("api-key", HTMLInputElement);
const forget = byId("forget-key", HTMLButtonElement);
const keyStatus = byId("key-status", HTMLParagraphElement);
const chatModel = byId("chat-model", HTMLSelectElement);
const workflowTarget = byId("workflow-target", HTMLInputElement);
const workflowModels = byId("workflow-models", HTMLDataListElement);

createChatPanel(createClient(ChatService, transport));
createWorkflowPanel(createClient(WorkflowService, transport));
const models = createClient(ModelService, transport);

let suggested: string[] = [];
let listed: Model[] = [];

function showModels(): void {
  const choices = modelChoices(listed, suggested);
  fillSelect(chatModel, choices.chat);
  fillDatalist(workflowModels, choices.workflow);
  if (workflowTarget.value === "" && choices.workflow[0] !== undefined) {
    workflowTarget.value = choices.workflow[0].name;
  }
}

function setStatus(text: string, kind: "ok" | "error" | "info"): void {
  keyStatus.textContent = text;
  keyStatus.className = kind === "info" ? "status" : `status ${kind}`;
}

/** Checks the key with ListModels and offers the models it may use. */
async function checkKey(): Promise<void> {
  setStatus("Checking the key…", "info");
  try {
    listed = (await models.listModels({})).models;
    showModels();
    const discovered = listed.filter((m) => m.discovered).length;
    setStatus(
      `Key accepted: ${listed.length - discovered} configured and ${discovered} discovered model(s); dynamic names such as workflow:{id} work too.`,
      "ok",
    );
  } catch (err) {
    setStatus(describeError(err), "error");
  }
}

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  keys.set(keyInput.value.trim());
  void checkKey();
});

forget.addEventListener("click", () => {
  keys.set("");
  keyInput.value = "";
  listed = [];
  showModels();
  setStatus("Key forgotten. Enter an API key to call the gateway.", "info");
});

async function start(): Promise<void> {
  suggested = await fetchSuggestedModels();
  showModels();
  const key = keys.get();
  if (key !== "") {
    keyInput.value = key;
    await checkKey();
  }
}

void start();
