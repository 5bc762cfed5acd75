/**
 * The model names of the audio endpoints: OpenAI's, as its SDKs send them. They need no route:
 * every one is served by Coze's audio API on the default channel (or the channel a gRPC request
 * names). An API key's `models` allow-list applies to them like to any model name.
 */
export const audioModels = {
  /** Text to speech (`POST /v1/audio/speech`, `AudioService.Speech`); the first is the default. */
  speech: ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"],
  /** Speech to text (`POST /v1/audio/transcriptions`, `AudioService.Transcribe`); the first is the default. */
  transcription: ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"],
} as const satisfies Record<string, readonly [string, ...string[]]>;

/** Every audio model name. */
export const audioModelNames: readonly string[] = [
  ...audioModels.speech,
  ...audioModels.transcription,
];
