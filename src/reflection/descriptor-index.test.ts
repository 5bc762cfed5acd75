import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
} from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ChatService } from "../gen/cozegateway/v1/chat_pb.js";
import { ModelService } from "../gen/cozegateway/v1/model_pb.js";
import { WorkflowService } from "../gen/cozegateway/v1/workflow_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { createDescriptorIndex } from "./descriptor-index.js";

const index = createDescriptorIndex([ChatService, WorkflowService, ModelService, Health]);

/** The file names of serialized FileDescriptorProtos, in order. */
const names = (files: Uint8Array[]) =>
  files.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);

describe("the descriptor index", () => {
  it("lists the services it was given, each once", () => {
    const twice = createDescriptorIndex([ChatService, ChatService, Health]);
    expect(twice.services).toEqual(["cozegateway.v1.ChatService", "grpc.health.v1.Health"]);
  });

  it("finds the services' files and their imports by file name, and nothing else", () => {
    for (const name of [
      "cozegateway/v1/chat.proto",
      "cozegateway/v1/common.proto",
      "google/protobuf/struct.proto",
      "google/protobuf/timestamp.proto",
      "grpc/health/v1/health.proto",
    ]) {
      expect(index.fileByName(name)?.proto.name).toBe(name);
    }
    expect(index.fileByName("cozegateway/v1/chat")).toBeUndefined();
    expect(index.fileByName("google/protobuf/descriptor.proto")).toBeUndefined();
    expect(index.fileByName("../cozegateway/v1/chat.proto")).toBeUndefined();
  });

  it.each([
    ["cozegateway.v1.ChatService", "cozegateway/v1/chat.proto"],
    ["cozegateway.v1.ChatService.ChatStream", "cozegateway/v1/chat.proto"],
    ["cozegateway.v1.WorkflowService.WatchWorkflow", "cozegateway/v1/workflow.proto"],
    ["cozegateway.v1.ChatRequest", "cozegateway/v1/chat.proto"],
    ["cozegateway.v1.ChatRequest.messages", "cozegateway/v1/chat.proto"],
    ["cozegateway.v1.ChatStreamResponse.event", "cozegateway/v1/chat.proto"],
    ["cozegateway.v1.Role", "cozegateway/v1/chat.proto"],
    ["cozegateway.v1.ROLE_USER", "cozegateway/v1/chat.proto"],
    ["cozegateway.v1.Usage", "cozegateway/v1/common.proto"],
    ["cozegateway.v1.ModelKind", "cozegateway/v1/model.proto"],
    ["google.protobuf.Struct.FieldsEntry", "google/protobuf/struct.proto"],
    ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
    ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
    ["grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"],
    [".cozegateway.v1.ChatService", "cozegateway/v1/chat.proto"],
  ])("finds the file declaring %s", (symbol, file) => {
    expect(index.fileContainingSymbol(symbol)?.proto.name).toBe(file);
  });

  it.each([
    "cozegateway.v1.ChatService.Nope",
    "cozegateway.v1",
    "cozegateway.v1.Role.ROLE_USER",
    "ChatService",
    "cozegateway.v1.chatservice",
    "",
    "google.protobuf.Any",
  ])("finds no file for %j", (symbol) => {
    expect(index.fileContainingSymbol(symbol)).toBeUndefined();
  });

  it("sends the asked file first, then its transitive imports breadth first, each once", () => {
    const workflow = index.fileByName("cozegateway/v1/workflow.proto");
    if (workflow === undefined) throw new Error("workflow.proto is not indexed");
    const sent = new Set<string>();
    expect(names(index.withDependencies(workflow, sent))).toEqual([
      "cozegateway/v1/workflow.proto",
      "cozegateway/v1/common.proto",
      "google/protobuf/struct.proto",
      "google/protobuf/timestamp.proto",
    ]);
    expect([...sent].sort()).toEqual([
      "cozegateway/v1/common.proto",
      "cozegateway/v1/workflow.proto",
      "google/protobuf/struct.proto",
      "google/protobuf/timestamp.proto",
    ]);
  });

  it("leaves out what the stream already sent, but always sends the asked file", () => {
    const chat = index.fileContainingSymbol("cozegateway.v1.ChatService");
    const workflow = index.fileContainingSymbol("cozegateway.v1.WorkflowService");
    if (chat === undefined || workflow === undefined) throw new Error("not indexed");
    const sent = new Set<string>();
    expect(names(index.withDependencies(chat, sent))).toEqual([
      "cozegateway/v1/chat.proto",
      "cozegateway/v1/common.proto",
      "google/protobuf/struct.proto",
    ]);
    expect(names(index.withDependencies(workflow, sent))).toEqual([
      "cozegateway/v1/workflow.proto",
      "google/protobuf/timestamp.proto",
    ]);
    expect(names(index.withDependencies(chat, sent))).toEqual(["cozegateway/v1/chat.proto"]);
    // Another stream starts afresh.
    expect(names(index.withDependencies(chat, new Set()))).toHaveLength(3);
  });

  it("serializes files a protobuf registry can load back, services and all", () => {
    const chat = index.fileByName("cozegateway/v1/chat.proto");
    if (chat === undefined) throw new Error("chat.proto is not indexed");
    const protos = index
      .withDependencies(chat, new Set())
      .map((b) => fromBinary(FileDescriptorProtoSchema, b));
    // The asked file comes first, not after its imports: resolve the others by name.
    const byName = new Map(protos.map((p) => [p.name, p]));
    const first = protos[0];
    if (first === undefined) throw new Error("no file sent");
    const registry = createFileRegistry(first, (name) => byName.get(name));
    const service = registry.getService("cozegateway.v1.ChatService");
    expect(service?.methods.map((m) => m.name)).toEqual(ChatService.methods.map((m) => m.name));
    expect(
      registry.getMessage("cozegateway.v1.ChatRequest")?.fields.map((f) => f.jsonName),
    ).toEqual(ChatService.method.chat.input.fields.map((f) => f.jsonName));
  });

  it("says there are no extensions of a known message type, and knows no unknown type", () => {
    expect(index.extensionNumbersOf("cozegateway.v1.ChatRequest")).toEqual([]);
    expect(index.extensionNumbersOf(".google.protobuf.Struct")).toEqual([]);
    // Known symbols, but not message types.
    expect(index.extensionNumbersOf("cozegateway.v1.Role")).toBeUndefined();
    expect(index.extensionNumbersOf("cozegateway.v1.ChatService")).toBeUndefined();
    expect(index.extensionNumbersOf("cozegateway.v1.Nope")).toBeUndefined();
    expect(index.fileContainingExtension("cozegateway.v1.ChatRequest", 100)).toBeUndefined();
  });

  it("finds extensions and nested types of a contract that declares them", () => {
    const ext = extensionFile();
    const service = ext.getService("test.v1.ExtService");
    if (service === undefined) throw new Error("ExtService not loaded");
    const withExt = createDescriptorIndex([service]);
    expect(withExt.extensionNumbersOf("test.v1.Base")?.sort()).toEqual([100, 101]);
    expect(withExt.fileContainingExtension("test.v1.Base", 100)?.proto.name).toBe("test/ext.proto");
    expect(withExt.fileContainingExtension(".test.v1.Base", 101)?.proto.name).toBe(
      "test/ext.proto",
    );
    expect(withExt.fileContainingExtension("test.v1.Base", 102)).toBeUndefined();
    expect(withExt.fileContainingExtension("test.v1.Other", 100)).toBeUndefined();
    expect(withExt.fileContainingSymbol("test.v1.tag")?.proto.name).toBe("test/ext.proto");
    expect(withExt.fileContainingSymbol("test.v1.Base.Inner.Deep")?.proto.name).toBe(
      "test/ext.proto",
    );
    expect(withExt.fileContainingSymbol("test.v1.Base.Inner.flag")?.proto.name).toBe(
      "test/ext.proto",
    );
    expect(withExt.fileContainingSymbol("test.v1.Base.note")?.proto.name).toBe("test/ext.proto");
  });
});

/**
 * A proto2 file with a message open to extensions, two extensions of it (one nested), a message
 * nested two deep, and a service: what our own contract does not have.
 */
function extensionFile() {
  const int32 = (name: string, number: number, extendee?: string) => ({
    name,
    number,
    label: Label.OPTIONAL,
    type: Type.INT32,
    ...(extendee ? { extendee } : {}),
  });
  const file = create(FileDescriptorProtoSchema, {
    name: "test/ext.proto",
    package: "test.v1",
    syntax: "proto2",
    messageType: [
      {
        name: "Base",
        field: [int32("id", 1)],
        extensionRange: [{ start: 100, end: 200 }],
        nestedType: [
          {
            name: "Inner",
            field: [int32("flag", 1)],
            nestedType: [{ name: "Deep", field: [int32("depth", 1)] }],
          },
        ],
        extension: [int32("note", 101, ".test.v1.Base")],
      },
    ],
    extension: [int32("tag", 100, ".test.v1.Base")],
    service: [
      {
        name: "ExtService",
        method: [{ name: "Get", inputType: ".test.v1.Base", outputType: ".test.v1.Base" }],
      },
    ],
  });
  return createFileRegistry(file, () => undefined);
}
