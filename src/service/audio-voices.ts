import { create } from "@bufbuild/protobuf";
import type { CozeVoice, VoiceQuery } from "../coze/audio.js";
import {
  type ListVoicesRequest,
  type Voice,
  VoiceModelType,
  VoiceSchema,
  VoiceState,
  VoiceStateFilter,
} from "../gen/cozegateway/v1/audio_pb.js";
import { invalidArgument } from "./errors.js";

/**
 * The Coze query of a ListVoices request: 0 and UNSPECIFIED mean Coze's defaults.
 *
 * @throws GatewayError `invalid_argument` on `page_num`, `page_size` (1 to 100), `model_type`
 *   or `voice_state` values outside the contract.
 */
export function voiceQuery(req: ListVoicesRequest): Omit<VoiceQuery, "signal" | "trace"> {
  if (req.pageNum < 0) throw invalidArgument("page_num", "must be 1 or more");
  if (req.pageSize < 0 || req.pageSize > 100) {
    throw invalidArgument("page_size", "must be between 1 and 100");
  }
  const modelType = { [VoiceModelType.BIG]: "big", [VoiceModelType.SMALL]: "small" } as const;
  const states = {
    [VoiceStateFilter.INIT]: "init",
    [VoiceStateFilter.CLONED]: "cloned",
    [VoiceStateFilter.ALL]: "all",
  } as const;
  if (req.modelType !== VoiceModelType.UNSPECIFIED && !(req.modelType in modelType)) {
    throw invalidArgument("model_type", "must be big or small");
  }
  if (req.voiceState !== VoiceStateFilter.UNSPECIFIED && !(req.voiceState in states)) {
    throw invalidArgument("voice_state", "must be init, cloned or all");
  }
  return {
    filterSystemVoice: req.filterSystemVoice,
    modelType: modelType[req.modelType as keyof typeof modelType],
    voiceState: states[req.voiceState as keyof typeof states],
    pageNum: req.pageNum === 0 ? undefined : req.pageNum,
    pageSize: req.pageSize === 0 ? undefined : req.pageSize,
  };
}

/** A Coze voice as the contract's Voice. */
export function voiceMessage(v: CozeVoice): Voice {
  return create(VoiceSchema, {
    voiceId: v.voiceId,
    name: v.name,
    languageCode: v.languageCode,
    languageName: v.languageName,
    previewText: v.previewText,
    previewAudio: v.previewAudio,
    modelName: v.modelName,
    state:
      v.state === "init"
        ? VoiceState.INIT
        : v.state === "cloned"
          ? VoiceState.CLONED
          : VoiceState.UNSPECIFIED,
    modelType:
      v.modelType === "big"
        ? VoiceModelType.BIG
        : v.modelType === "small"
          ? VoiceModelType.SMALL
          : VoiceModelType.UNSPECIFIED,
    isSystemVoice: v.isSystemVoice,
    createTime: BigInt(Math.trunc(v.createTime)),
    updateTime: BigInt(Math.trunc(v.updateTime)),
    availableTrainingTimes: Math.min(
      Math.max(Math.trunc(v.availableTrainingTimes), 0),
      2 ** 31 - 1,
    ),
    supportEmotions: v.supportEmotions.map((e) => ({
      emotion: e.emotion,
      displayName: e.displayName,
      scaleMin: e.scale.min,
      scaleMax: e.scale.max,
      scaleDefault: e.scale.default,
    })),
  });
}
