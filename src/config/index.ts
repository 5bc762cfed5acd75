export { apiKeyDigest, hashApiKey, modelAllowed } from "./api-keys.js";
export { audioModelNames, audioModels } from "./audio-models.js";
export { channelDefaults } from "./channels.js";
export { ConfigError, type ConfigErrorOptions } from "./config-error.js";
export type {
  ApiKeyConfig,
  ChannelConfig,
  ChannelLimitsConfig,
  ConfigEnv,
  DiscoveryConfig,
  DiscoveryKind,
  GatewayConfig,
  InterruptsConfig,
  KeyLimitsConfig,
  MetricsConfig,
  ModelKind,
  ModelRoute,
  PollingConfig,
  ServerConfig,
  StateConfig,
  TimeoutsConfig,
} from "./gateway-config.js";
export { interruptDefaults } from "./interrupts.js";
export { channelLimitDefaults, keyLimitRanges } from "./limits.js";
export { loadConfig } from "./load-config.js";
export { type ParseConfigOptions, parseConfig, validateConfig } from "./parse-config.js";
export { parsePrivateKey } from "./private-key.js";
export { planReload, type ReloadPlan } from "./reload-plan.js";
export {
  defaultChannel,
  dynamicPrefixes,
  dynamicRoute,
  parseDynamicName,
  resolveModel,
  resolveRoutes,
} from "./resolve-model.js";
export { serverDefaults } from "./server-section.js";
export { stateDefaults } from "./state.js";
export { type TracingConfig, tracingDefaults } from "./tracing.js";
