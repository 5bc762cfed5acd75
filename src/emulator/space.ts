import { catalog } from "./catalog.js";

/**
 * The emulator's one Coze workspace (space) and what is in it, for the discovery endpoints
 * (coze-api.md §13): the scripted bots and workflows of {@link catalog} with names and
 * descriptions, a bot that was never published and a workflow that belongs to an app.
 */

/** What a space entry is: a bot, a workflow or a chatflow (`workflow_mode`, §13.5). */
export type SpaceEntryKind = "bot" | "workflow" | "chatflow";

/** One bot, workflow or chatflow of the space. Times are Unix seconds. */
export interface SpaceEntry {
  kind: SpaceEntryKind;
  /** A 19-digit id string. */
  id: string;
  name: string;
  description: string;
  /** Published to the API channel (connector 1024); `false`: a draft never published. */
  published: boolean;
  /** The app a workflow belongs to, `"0"` for none (§13.5). Bots: `"0"`. */
  appId: string;
  createdAt: number;
  updatedAt: number;
  /** When it was last published; `undefined` while it never was. */
  publishedAt: number | undefined;
}

/** What a test or the demo gives to add an entry; the rest is filled in from the clock. */
export interface SpaceEntryInput {
  kind: SpaceEntryKind;
  id: string;
  name: string;
  description?: string;
  /** Default true. */
  published?: boolean;
  /** Default `"0"` (no app). */
  appId?: string;
}

/** The space as the emulator's control surface shows it (`emulator.space`). */
export interface EmulatorSpace {
  /** The workspace id the list endpoints answer for, e.g. in `workspace_id` / `space_id`. */
  readonly id: string;
  /**
   * Adds an entry, or replaces the one with the same id (a rename, a publish, a re-publish: its
   * publish time becomes the emulator clock's now). Throws `TypeError` for an id that is not
   * 1 to 32 digits or an empty name.
   */
  put(entry: SpaceEntryInput): void;
  /** Removes an entry (as deleting or unpublishing it in the Coze UI would); unknown ids are ignored. */
  remove(id: string): void;
  /** The entries in insertion order, copied. */
  list(): SpaceEntry[];
}

/** The workspace id of the emulator's space. */
export const spaceId = catalog.space;

/** The workspace's own fields (§13.1). */
export const spaceInfo = {
  id: spaceId,
  name: "Demo space",
  icon_url: "https://emulator.invalid/icons/space.png",
  role_type: "owner",
  workspace_type: "personal",
  enterprise_id: "",
  joined_status: "joined",
  owner_uid: "2615000000000000001",
  description: "The Coze emulator's workspace",
  admin_uids: [] as string[],
} as const;

// Fixed times for the built-in entries, in publish order, so lists sorted by time are stable.
const t0 = 1_752_060_786;

const builtIn: readonly SpaceEntryInput[] = [
  { kind: "bot", id: catalog.bots.echo, name: "Echo", description: "Repeats what you say." },
  {
    kind: "bot",
    id: catalog.bots.reasoning,
    name: "Reasoning echo",
    description: "Thinks out loud first, then repeats what you say.",
  },
  {
    kind: "bot",
    id: catalog.bots.tool,
    name: "Weather tool",
    description: "Asks you to run get_weather, then answers with what the tool said.",
  },
  {
    kind: "bot",
    id: catalog.bots.failing,
    name: "Failing bot",
    description: "Always fails, for trying out error handling.",
  },
  {
    kind: "bot",
    id: catalog.bots.slow,
    name: "Slow talker",
    description: "Answers one word at a time, for trying out Stop.",
  },
  {
    kind: "bot",
    id: "7390000000000000099",
    name: "Draft bot",
    description: "Never published: only publish_status=all or unpublished_draft lists it.",
    published: false,
  },
  {
    kind: "workflow",
    id: catalog.workflows.echo,
    name: "echo",
    description: "Outputs its input.",
  },
  {
    kind: "workflow",
    id: catalog.workflows.slowAsync,
    name: "slow_echo",
    description: "Outputs its input after a while; try it as workflow-async:.",
  },
  {
    kind: "workflow",
    id: catalog.workflows.interrupt,
    name: "ask_question",
    description: "Stops to ask a question and answers with what you replied.",
  },
  {
    kind: "workflow",
    id: catalog.workflows.failing,
    name: "failing_workflow",
    description: "Always fails, for trying out error handling.",
  },
  {
    kind: "workflow",
    id: catalog.workflows.large,
    name: "large_output",
    description: "Outputs a large result (1.5 MiB by default).",
  },
  {
    kind: "workflow",
    id: "7391000000000000099",
    name: "app_helper",
    description: "Belongs to an app: runs need its app_id.",
    appId: "7400000000000000001",
  },
  {
    kind: "chatflow",
    id: catalog.workflows.chatflow,
    name: "echo_chatflow",
    description: "A chatflow that repeats what you say.",
  },
];

const idPattern = /^\d{1,32}$/;

/** Creates the space with its built-in entries; `now` is the emulator clock (ms). */
export function createSpace(now: () => number): EmulatorSpace {
  const entries = new Map<string, SpaceEntry>();
  const add = (input: SpaceEntryInput, at: number) => {
    if (!idPattern.test(input.id)) throw new TypeError("space entry id must be 1 to 32 digits");
    if (typeof input.name !== "string" || input.name === "") {
      throw new TypeError("space entry name must be a non-empty string");
    }
    const published = input.published ?? true;
    const earlier = entries.get(input.id);
    entries.set(input.id, {
      kind: input.kind,
      id: input.id,
      name: input.name,
      description: input.description ?? "",
      published,
      appId: input.appId ?? "0",
      createdAt: earlier?.createdAt ?? at,
      updatedAt: at,
      publishedAt: published ? at : earlier?.publishedAt,
    });
  };
  builtIn.forEach((entry, i) => {
    add(entry, t0 + i * 60);
  });
  return {
    id: spaceId,
    put: (entry) => add(entry, Math.floor(now() / 1000)),
    remove: (id) => {
      entries.delete(id);
    },
    list: () => [...entries.values()].map((e) => ({ ...e })),
  };
}
