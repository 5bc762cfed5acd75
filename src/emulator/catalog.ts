/**
 * The scripted bots and workflows the emulator knows, by id, and the space that lists them. Ids are 19-digit strings like real
 * Coze ids (they do not fit a JS number). Any other id is answered with the not-found code 4200.
 */
export const catalog = {
  /**
   * The one workspace (space) the discovery endpoints list (§13): every bot and workflow below,
   * named and described, plus a never-published bot and a workflow of an app (`space.ts`).
   */
  space: "7350000000000000001",
  bots: {
    /** Answers `You said: <last user text>` in at least 3 deltas; `!received` dumps its input. */
    echo: "7390000000000000001",
    /** Streams `reasoning_content` deltas first, then the echo answer. */
    reasoning: "7390000000000000002",
    /** Asks for a `get_weather` tool call, then answers `The tool said: <output>`. */
    tool: "7390000000000000003",
    /** Fails: `conversation.chat.failed` (recorded form, `bare` form) or an `error` event. */
    failing: "7390000000000000004",
    /** Many deltas `slowDeltaMs` apart; honours cancel and client disconnects. */
    slow: "7390000000000000005",
  },
  workflows: {
    /** Outputs `{"output": parameters.input}` (plus `parameters` when there are others). */
    echo: "7391000000000000001",
    /**
     * Echoes like `echo`, finishing after `parameters.run_ms` (default 4000, emulator clock) or,
     * for async runs, on the `parameters.polls`-th history read.
     */
    slowAsync: "7391000000000000002",
    /** Interrupts with a question node; `stream_resume` answers `You answered: <data>`. */
    interrupt: "7391000000000000003",
    /** Fails with code 720702017. */
    failing: "7391000000000000004",
    /**
     * Outputs `parameters.size_bytes` bytes (default 1.5 MiB), so run history trims it, nested in
     * `parameters.depth` arrays (default 0).
     */
    large: "7391000000000000005",
    /** A chatflow for `/v1/workflows/chat`: echoes the last user message. */
    chatflow: "7391000000000000006",
  },
  /** Voices of `/v1/audio/voices` and `/v1/audio/speech` (audio-voices.ts has their details). */
  voices: {
    /** `alloy`: a large-model system voice (speeds 0.5 to 2), one emotion. */
    alloy: "7392000000000000001",
    /** `nova`: a large-model system voice with emotions (happy, sad, angry, neutral). */
    nova: "7392000000000000002",
    /** `echo`: a small-model system voice (speeds 0.2 to 3). */
    echo: "7392000000000000003",
    /** `my-voice`: the account's own cloned voice (small model). */
    cloned: "7392000000000000004",
    /** `untrained`: the account's own voice in state `init`: it cannot speak. */
    untrained: "7392000000000000005",
  },
} as const;

/** Name of a scripted bot in {@link catalog}. */
export type BotName = keyof typeof catalog.bots;
/** Name of a scripted workflow in {@link catalog}. */
export type WorkflowName = keyof typeof catalog.workflows;

/** The scripted bot with this id, if any. */
export function botName(id: string): BotName | undefined {
  return (Object.keys(catalog.bots) as BotName[]).find((name) => catalog.bots[name] === id);
}

/** The scripted workflow with this id, if any. */
export function workflowName(id: string): WorkflowName | undefined {
  return (Object.keys(catalog.workflows) as WorkflowName[]).find(
    (name) => catalog.workflows[name] === id,
  );
}
