import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { ServerReflection as V1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as V1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The request handler `connectNodeAdapter` returns. */
type NodeHandler = ReturnType<typeof connectNodeAdapter>;

/** What a reflection call over HTTP/1.1 is told. */
export const reflectionNeedsHttp2Message =
  "gRPC reflection is a bidirectional stream and needs HTTP/2: h2c with prior knowledge " +
  "(buf curl --http2-prior-knowledge, grpcurl -plaintext) or TLS with ALPN h2";

/** The paths of the two reflection procedures, the only bidirectional ones the gateway serves. */
const reflectionPaths = new Set(
  [V1, V1alpha].map((s) => `/${s.typeName}/${s.method.serverReflectionInfo.name}`),
);

/**
 * Wraps the Connect handler so that a reflection call over HTTP/1.1 gets 505 with a body saying
 * why, `{"error":{"code":"http_version_not_supported","message":…}}`, and `Connection: close`.
 * Connect refuses every bidirectional call over HTTP/1.1 (a half-duplex connection cannot carry
 * it) with the same status and no body, which leaves a curl or gRPC-Web user guessing. Every
 * other request goes to `connect` untouched.
 */
export function explainReflectionOverHttp1(connect: NodeHandler): NodeHandler {
  return (req, res) => {
    if (req.httpVersionMajor !== 1 || !reflectionPaths.has(pathOf(req.url))) {
      connect(req, res);
      return;
    }
    const body = JSON.stringify({
      error: { code: "http_version_not_supported", message: reflectionNeedsHttp2Message },
    });
    res.statusCode = 505;
    res.setHeader("content-type", "application/json; charset=utf-8");
    res.setHeader("content-length", Buffer.byteLength(body));
    // The client may be writing a request body it means to stream for ever.
    res.setHeader("connection", "close");
    res.end(body);
  };
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return "";
  const query = url.indexOf("?");
  return query === -1 ? url : url.slice(0, query);
}
