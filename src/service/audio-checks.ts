import type { CozeVoice, SpeechFormat } from "../coze/audio.js";
import { AudioFormat, type SpeechRequest } from "../gen/cozegateway/v1/audio_pb.js";
import { invalidArgument } from "./errors.js";

/** The limits of coze-api.md §15, checked before Coze is called. */
export const audioLimits = {
  /** The largest speech input, in UTF-8 bytes. */
  inputBytes: 1024,
  /** The largest audio file transcribed, in bytes ("≤ 10 MB"). */
  fileBytes: 10 * 1024 * 1024,
  sampleRates: [8000, 16000, 22050, 24000, 32000, 44100, 48000],
  emotions: [
    "happy",
    "sad",
    "angry",
    "surprised",
    "fear",
    "hate",
    "excited",
    "coldness",
    "neutral",
  ],
  /** What large-model ASR accepts, by file extension (small-model ASR takes a subset). */
  transcriptionFormats: [
    "opus",
    "ogg",
    "mp3",
    "wav",
    "m4a",
    "mp4",
    "pcm",
    "raw",
    "spx",
    "aac",
    "amr",
  ],
} as const;

/** What each format is asked of Coze as, and the Content-Type it is answered with. */
export const speechFormats: Record<
  number,
  { coze: SpeechFormat; contentType: string } | undefined
> = {
  [AudioFormat.UNSPECIFIED]: { coze: "mp3", contentType: "audio/mpeg" },
  [AudioFormat.MP3]: { coze: "mp3", contentType: "audio/mpeg" },
  [AudioFormat.WAV]: { coze: "wav", contentType: "audio/wav" },
  [AudioFormat.PCM]: { coze: "pcm", contentType: "audio/pcm" },
  [AudioFormat.OGG_OPUS]: { coze: "ogg_opus", contentType: "audio/ogg" },
};

/**
 * The speech checks that need no voice, done before the voice is looked up: `input` (required,
 * at most 1024 bytes), `voice` (required), `response_format`, `speed` (0.2 to 3),
 * `sample_rate`, `emotion`, `emotion_scale` (1 to 5, with an emotion), `loudness_rate`.
 * Returns the format.
 *
 * @throws GatewayError `invalid_argument` naming the first field at fault.
 */
export function checkSpeech(req: SpeechRequest) {
  if (req.input === "") throw invalidArgument("input", "is required (the text to speak)");
  const bytes = Buffer.byteLength(req.input, "utf8");
  if (bytes > audioLimits.inputBytes) {
    throw invalidArgument(
      "input",
      `is ${bytes} bytes of UTF-8; Coze speaks at most ${audioLimits.inputBytes} bytes at a time`,
    );
  }
  if (req.voice === "") throw invalidArgument("voice", "is required (a voice id or name)");
  if (speechFormats[req.responseFormat] === undefined) {
    throw invalidArgument("response_format", "must be mp3, wav, pcm or ogg_opus");
  }
  if (req.speed !== 0 && !(req.speed >= 0.2 && req.speed <= 3)) {
    throw invalidArgument(
      "speed",
      `must be between 0.2 and 3 (0.5 and 2 for large-model voices); got ${req.speed}`,
    );
  }
  if (
    req.sampleRate !== 0 &&
    !(audioLimits.sampleRates as readonly number[]).includes(req.sampleRate)
  ) {
    throw invalidArgument("sample_rate", `must be one of ${audioLimits.sampleRates.join(", ")}`);
  }
  if (req.emotion !== "" && !(audioLimits.emotions as readonly string[]).includes(req.emotion)) {
    throw invalidArgument("emotion", `must be one of ${audioLimits.emotions.join(", ")}`);
  }
  if (req.emotionScale !== 0) {
    if (req.emotion === "") throw invalidArgument("emotion_scale", "needs emotion");
    if (!(req.emotionScale >= 1 && req.emotionScale <= 5)) {
      throw invalidArgument("emotion_scale", `must be between 1 and 5; got ${req.emotionScale}`);
    }
  }
  const loudness = req.loudnessRate;
  if (!(loudness >= -50 && loudness <= 100)) {
    throw invalidArgument(
      "loudness_rate",
      `must be between -50 and 100 (percent); got ${loudness}`,
    );
  }
  return speechFormats[req.responseFormat] as NonNullable<(typeof speechFormats)[number]>;
}

/**
 * The speech checks that depend on the voice: a large-model voice speaks at 0.5 to 2, and only
 * the emotions it lists.
 *
 * @throws GatewayError `invalid_argument` on `speed` or `emotion`.
 */
export function checkForVoice(req: SpeechRequest, voice: CozeVoice): void {
  // Named as the caller named it: the message carries nothing of Coze's text.
  const name = JSON.stringify(req.voice.slice(0, 64));
  if (voice.modelType === "big" && req.speed !== 0 && !(req.speed >= 0.5 && req.speed <= 2)) {
    throw invalidArgument(
      "speed",
      `must be between 0.5 and 2 for voice ${name}, a large-model voice; got ${req.speed}`,
    );
  }
  if (req.emotion !== "" && !voice.supportEmotions.some((e) => e.emotion === req.emotion)) {
    const known: readonly string[] = audioLimits.emotions;
    const has = voice.supportEmotions.map((e) => e.emotion).filter((e) => known.includes(e));
    throw invalidArgument(
      "emotion",
      has.length === 0
        ? `voice ${name} speaks with one emotion; leave emotion out`
        : `voice ${name} speaks with ${has.join(", ")} only`,
    );
  }
}
