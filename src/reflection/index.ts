export { createDescriptorIndex, type DescriptorIndex } from "./descriptor-index.js";
export { explainReflectionOverHttp1, reflectionNeedsHttp2Message } from "./reflection-http.js";
export { registerReflection } from "./reflection-service.js";
