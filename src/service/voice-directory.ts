import type { CozeVoice } from "../coze/audio.js";
import type { CallTrace } from "../coze/http.js";
import type { Channel } from "./channels.js";
import { invalidArgument } from "./errors.js";

/** Options of {@link createVoiceDirectory}. */
export interface VoiceDirectoryOptions {
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** How long a channel's voice list is used before it is read again, in ms. Default 600 000. */
  ttlMs?: number;
  /**
   * A voice not in a list at least this old (ms) reads the list again once before it is refused
   * (a voice cloned a moment ago). Default 30 000: an unknown voice sent in a loop costs at
   * most one list read per interval.
   */
  missRefreshMs?: number;
  /** Most pages of 100 read per list. Default 20 (2 000 voices). */
  maxPages?: number;
}

/** The voices of each channel's Coze account, read from Coze and kept for a while. */
export interface VoiceDirectory {
  /**
   * The voice that `voice` names on `channel`: the one whose id it is, else the one whose name
   * it is (case does not matter). Only voices that can speak (state `cloned`) are known.
   *
   * @throws GatewayError `invalid_argument` on `voice` when none or several match; CozeError
   *   when the list cannot be read.
   */
  find(channel: Channel, voice: string, signal: AbortSignal, trace?: CallTrace): Promise<CozeVoice>;
}

interface Entry {
  voices: readonly CozeVoice[];
  readAt: number;
}

/**
 * Creates the voice directory: one list per channel, read on first use (all pages) and again
 * once it is `ttlMs` old, by one call however many requests wait for it (single flight). The
 * read is not tied to one caller: a caller that goes away stops waiting, the read goes on for
 * the others, bounded by the channel's request timeout. A failed read is not kept.
 */
export function createVoiceDirectory(options: VoiceDirectoryOptions = {}): VoiceDirectory {
  const now = options.now ?? Date.now;
  const ttlMs = options.ttlMs ?? 600_000;
  const missRefreshMs = options.missRefreshMs ?? 30_000;
  const maxPages = options.maxPages ?? 20;
  const lists = new Map<string, Entry>();
  const reading = new Map<string, Promise<Entry>>();

  async function readAll(channel: Channel, trace: CallTrace | undefined): Promise<Entry> {
    const voices: CozeVoice[] = [];
    for (let page = 1; page <= maxPages; page++) {
      const got = await channel.client.audio.listVoices({ pageNum: page, pageSize: 100, trace });
      voices.push(...got.voices);
      if (!got.hasMore || got.voices.length === 0) break;
    }
    return { voices: voices.filter((v) => v.state !== "init"), readAt: now() };
  }

  function read(channel: Channel, trace: CallTrace | undefined): Promise<Entry> {
    let pending = reading.get(channel.name);
    if (pending === undefined) {
      pending = readAll(channel, trace).then(
        (entry) => {
          lists.set(channel.name, entry);
          reading.delete(channel.name);
          return entry;
        },
        (err: unknown) => {
          reading.delete(channel.name);
          throw err;
        },
      );
      reading.set(channel.name, pending);
    }
    return pending;
  }

  return {
    async find(channel, voice, signal, trace) {
      let entry = lists.get(channel.name);
      if (entry === undefined || now() - entry.readAt >= ttlMs) {
        entry = await untilAborted(read(channel, trace), signal);
      }
      let found = match(entry.voices, voice);
      if (found.length === 0 && now() - entry.readAt >= missRefreshMs) {
        entry = await untilAborted(read(channel, trace), signal);
        found = match(entry.voices, voice);
      }
      const [first, second] = found;
      if (first === undefined) {
        throw invalidArgument(
          "voice",
          `unknown voice ${JSON.stringify(voice.slice(0, 64))} on channel ${channel.name}; the voices list names the voices it may use`,
        );
      }
      if (second !== undefined) {
        throw invalidArgument(
          "voice",
          `${found.length} voices are named ${JSON.stringify(voice.slice(0, 64))}; give the voice id`,
        );
      }
      return first;
    },
  };
}

function match(voices: readonly CozeVoice[], voice: string): CozeVoice[] {
  const byId = voices.filter((v) => v.voiceId === voice);
  if (byId.length > 0) return byId;
  const name = voice.toLowerCase();
  return voices.filter((v) => v.name.toLowerCase() === name);
}

/** `promise`, or a rejection with `signal`'s reason once it aborts (the promise goes on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
