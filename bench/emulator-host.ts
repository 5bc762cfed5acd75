// The Coze emulator in its own process, for the bench. It runs `src/emulator` unchanged, in its
// zero-latency mode (`timing.deltaMs: 0`); only the slow bot is paced (`slowDeltaMs`, 5 ms for
// the streaming scenario). For the streaming and abort scenarios the harness switches on a
// recorder that notes, on CLOCK_MONOTONIC (`process.hrtime`, the same clock in every process on
// the machine), when each `conversation.message.delta` frame is handed to the socket and when each
// event stream closes, keyed by conversation id. It wraps `ServerResponse.prototype.write` in this
// process only: nothing is added to the emulator itself.
import { ServerResponse } from "node:http";
import { startEmulator } from "../src/emulator/index.js";

interface StreamRecord {
  conversationId: string | undefined;
  /** hrtime (ns) of each delta frame, in order. */
  deltas: bigint[];
  closedAt: bigint | undefined;
}

let recording = false;
const open = new WeakMap<ServerResponse, StreamRecord>();
let finished: StreamRecord[] = [];

const originalWrite = ServerResponse.prototype.write;
ServerResponse.prototype.write = function write(
  this: ServerResponse,
  chunk: unknown,
  ...rest: unknown[]
) {
  if (recording && typeof chunk === "string" && chunk.startsWith("event:")) {
    const now = process.hrtime.bigint();
    let rec = open.get(this);
    if (rec === undefined) {
      const created: StreamRecord = { conversationId: undefined, deltas: [], closedAt: undefined };
      rec = created;
      open.set(this, created);
      this.once("close", () => {
        created.closedAt = process.hrtime.bigint();
        finished.push(created);
      });
    }
    if (rec.conversationId === undefined) {
      const at = chunk.indexOf('"conversation_id":"');
      if (at !== -1) {
        const from = at + '"conversation_id":"'.length;
        rec.conversationId = chunk.slice(from, chunk.indexOf('"', from));
      }
    }
    if (chunk.startsWith("event:conversation.message.delta")) rec.deltas.push(now);
  }
  return (originalWrite as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
} as typeof ServerResponse.prototype.write;

const slowDeltaMs = Number(process.env.BENCH_SLOW_DELTA_MS ?? 5);
const emulator = await startEmulator({ timing: { deltaMs: 0, slowDeltaMs } });
const app = await emulator.createApp();

process.on("message", (m: { type?: string; on?: boolean }) => {
  switch (m?.type) {
    case "record":
      recording = m.on === true;
      finished = [];
      process.send?.({ type: "record" });
      break;
    case "take": {
      const streams = finished
        .filter((r) => r.conversationId !== undefined)
        .map((r) => ({
          conversationId: r.conversationId,
          deltas: r.deltas.map(String),
          closedAt: r.closedAt === undefined ? undefined : String(r.closedAt),
        }));
      finished = [];
      process.send?.({ type: "take", streams });
      break;
    }
    default:
      break;
  }
});
process.on("SIGTERM", () => {
  emulator.close().then(() => process.exit(0));
});
process.send?.({ type: "ready", url: emulator.url, app });
