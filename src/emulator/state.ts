import type { ChatRecord, Conversation } from "./chat-model.js";
import type { FaultStore } from "./faults.js";
import type { StoredFile } from "./files.js";
import type { RegisteredApp } from "./jwt-verify.js";
import type { RequestRecorder } from "./request-record.js";
import type { EmulatorSpace } from "./space.js";
import type { StatsRecorder } from "./stats.js";
import type { TokenStore } from "./tokens.js";
import type { InterruptRef, WorkflowRun } from "./workflow-model.js";

/** Everything the handlers share. One per emulator instance. */
export interface EmulatorState {
  /** The emulator clock (ms). */
  now: () => number;
  timing: { deltaMs: number; slowDeltaMs: number; pingMs: number };
  authErrorStatus: 200 | 401;
  /** What a streamed chat does when its client goes away (`EmulatorOptions.chatsOnDisconnect`). */
  chatsOnDisconnect: "cancel" | "run_on";
  /** Registered apps by public key id (`kid`). */
  apps: Map<string, RegisteredApp>;
  /** `jti` → expiry (ms) of every JWT already exchanged. */
  usedJti: Map<string, number>;
  tokens: TokenStore;
  faults: FaultStore;
  stats: StatsRecorder;
  /** The latest API calls with their headers (`Emulator.requests`). */
  requests: RequestRecorder;
  conversations: Map<string, Conversation>;
  chats: Map<string, ChatRecord>;
  runs: Map<string, WorkflowRun>;
  /** Interrupt `event_id` → run, for `stream_resume`. */
  interrupts: Map<string, InterruptRef>;
  files: Map<string, StoredFile>;
  /** The workspace the discovery endpoints list (§13). */
  space: EmulatorSpace;
  /** Aborted when the emulator closes: every wait and stream stops. */
  shutdown: AbortSignal;
  /** The accepted JWT `aud` values for a request with this `Host` header (§7.1). */
  audiencesFor(hostHeader: string | undefined): Set<string>;
}

/**
 * The `aud` values accepted: the emulator's own `host:port`, the `Host` header the client used
 * (so `localhost` or a LAN name works when bound wider), each with and without the port (go/py
 * keep the port, java drops it, §2.1), plus the configured extras (e.g. `api.coze.cn`).
 */
export function audiences(
  own: string,
  hostHeader: string | undefined,
  extra: readonly string[],
): Set<string> {
  const set = new Set<string>(extra);
  for (const host of [own, hostHeader]) {
    if (!host) continue;
    set.add(host);
    set.add(withoutPort(host));
  }
  return set;
}

function withoutPort(host: string): string {
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const parts = host.split(":");
  return parts.length === 2 ? (parts[0] as string) : host;
}

/** Most entries kept per store (conversations, chats, runs, interrupts, files). */
export const STORE_LIMIT = 10_000;

/**
 * Stores `value` under `key`, evicting the oldest entries beyond {@link STORE_LIMIT} so that a
 * long benchmark does not grow the emulator without bound. An evicted id answers 4200 later.
 */
export function remember<K, V>(map: Map<K, V>, key: K, value: V, limit = STORE_LIMIT): void {
  map.set(key, value);
  while (map.size > limit) {
    const oldest = map.keys().next();
    if (oldest.done) break;
    map.delete(oldest.value);
  }
}
