export {
  createDescriptorIndex,
  type DescriptorIndex,
} from "./descriptor-index.js";
export { explainReflectionOverHttp1, reflectionNeedsHttp2Message } from "./reflection-http.js";
export {
  createReflectionAnswerer,
  type ReflectionAnswer,
  type ReflectionQuestion,
  registerReflection,
} from "./reflection-service.js";
