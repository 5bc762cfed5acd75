import { create } from "@bufbuild/protobuf";
import { Code, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createDescriptorIndex, type DescriptorIndex } from "./descriptor-index.js";

/**
 * One question of a reflection stream: the `message_request` of a v1 or v1alpha request (the two
 * versions are the same message under two packages).
 */
export type ReflectionQuestion =
  | {
      case:
        | "fileByFilename"
        | "fileContainingSymbol"
        | "allExtensionNumbersOfType"
        | "listServices";
      value: string;
    }
  | {
      case: "fileContainingExtension";
      value: { containingType: string; extensionNumber: number };
    }
  | { case: undefined; value?: undefined };

/** The answer to a {@link ReflectionQuestion}: the `message_response` of either version. */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | {
      case: "allExtensionNumbersResponse";
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * Answers the questions of one reflection stream, in turn. It remembers which files it has sent,
 * so that each file goes out once per stream (the file a question asks for excepted: it always
 * comes first in its answer). A question it cannot answer gets an `error_response` with
 * `NOT_FOUND` (unknown file, symbol, type or extension) or `INVALID_ARGUMENT` (no question set),
 * and the stream goes on.
 */
export function createReflectionAnswerer(
  index: DescriptorIndex,
): (question: ReflectionQuestion) => ReflectionAnswer {
  const sent = new Set<string>();
  const files = (file: Parameters<DescriptorIndex["withDependencies"]>[0]): ReflectionAnswer => ({
    case: "fileDescriptorResponse",
    value: { fileDescriptorProto: index.withDependencies(file, sent) },
  });
  return (question) => {
    switch (question.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: { service: index.services.map((name) => ({ name })) },
        };
      case "fileByFilename": {
        const file = index.fileByName(question.value);
        return file ? files(file) : notFound(`file not found: ${shown(question.value)}`);
      }
      case "fileContainingSymbol": {
        const file = index.fileContainingSymbol(question.value);
        return file ? files(file) : notFound(`symbol not found: ${shown(question.value)}`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = question.value;
        const file = index.fileContainingExtension(containingType, extensionNumber);
        return file
          ? files(file)
          : notFound(`extension ${extensionNumber} of ${shown(containingType)} not found`);
      }
      case "allExtensionNumbersOfType": {
        const numbers = index.extensionNumbersOf(question.value);
        if (numbers === undefined) {
          return notFound(`message type not found: ${shown(question.value)}`);
        }
        return {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: question.value, extensionNumber: numbers },
        };
      }
      default:
        return error(
          Code.InvalidArgument,
          "the request sets none of list_services, file_by_filename, file_containing_symbol, " +
            "file_containing_extension, all_extension_numbers_of_type",
        );
    }
  };
}

/**
 * Registers `grpc.reflection.v1.ServerReflection` and `grpc.reflection.v1alpha.ServerReflection`
 * on `router` with `options` (its interceptors, say). They describe every service registered on
 * the router so far, and themselves, so register them last. The files come from the generated
 * descriptors the services were registered with, well-known types included.
 */
export function registerReflection(
  router: ConnectRouter,
  options?: Parameters<ConnectRouter["service"]>[2],
): void {
  const index = createDescriptorIndex([
    ...router.handlers.map((h) => h.service),
    v1.ServerReflection,
    v1alpha.ServerReflection,
  ]);
  const v1Impl: ServiceImpl<typeof v1.ServerReflection> = {
    async *serverReflectionInfo(requests) {
      const answer = createReflectionAnswerer(index);
      for await (const req of requests) {
        yield create(v1.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answer(req.messageRequest),
        });
      }
    },
  };
  const v1alphaImpl: ServiceImpl<typeof v1alpha.ServerReflection> = {
    async *serverReflectionInfo(requests) {
      const answer = createReflectionAnswerer(index);
      for await (const req of requests) {
        yield create(v1alpha.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answer(req.messageRequest),
        });
      }
    },
  };
  router.service(v1.ServerReflection, v1Impl, options);
  router.service(v1alpha.ServerReflection, v1alphaImpl, options);
}

function notFound(message: string): ReflectionAnswer {
  return error(Code.NotFound, message);
}

function error(code: Code, message: string): ReflectionAnswer {
  // Connect's codes are gRPC's status codes, number for number.
  return { case: "errorResponse", value: { errorCode: code, errorMessage: message } };
}

/** A name from the request as an error message shows it: at most 200 characters. */
function shown(name: string): string {
  return name.length > 200 ? `${name.slice(0, 200)}…` : name;
}
