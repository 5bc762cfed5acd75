// The request context is the service layer's (it travels in handler contexts); the server makes
// one per incoming request.
export {
  beginRequest,
  noteFailure,
  type RequestContext,
  requestContextKey,
  requestOf,
} from "../service/request-context.js";
