import { type DescFile, type DescService, toBinary } from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";

/**
 * What gRPC reflection can tell about a set of services: their names, the proto files that
 * define them and every file those import, and which file declares each symbol and extension.
 * Built once from the generated descriptors (`DescService.file`), so it describes exactly the
 * contract the server was built with.
 */
export interface DescriptorIndex {
  /** The fully qualified names of the services, in registration order. */
  readonly services: readonly string[];
  /** The file named `name` (e.g. `cozegateway/v1/chat.proto`), if it is among the indexed files. */
  fileByName(name: string): DescFile | undefined;
  /**
   * The file declaring a fully qualified symbol: a service, a method, a message or enum (nested
   * ones too), a field, a oneof, an enum value (in its enum's scope, as protobuf scopes them) or an
   * extension. A leading dot is accepted.
   */
  fileContainingSymbol(symbol: string): DescFile | undefined;
  /** The file declaring the extension number `number` of the message type `extendee`. */
  fileContainingExtension(extendee: string, number: number): DescFile | undefined;
  /**
   * The field numbers of every indexed extension of the message type `extendee`; `undefined` when
   * no indexed file declares that message type.
   */
  extensionNumbersOf(extendee: string): number[] | undefined;
  /**
   * `file` serialized as a `google.protobuf.FileDescriptorProto`, then each of its transitive
   * imports breadth first, each once, leaving out the imports named in `sent`. Every file
   * returned is added to `sent`. `file` itself always comes first, sent before or not: clients
   * (grpcurl, buf curl) read the first file as the answer and keep the rest.
   */
  withDependencies(file: DescFile, sent: Set<string>): Uint8Array[];
}

/** Which file declares each symbol, which symbols are message types, and the extensions. */
interface Symbols {
  symbols: Map<string, DescFile>;
  messages: Set<string>;
  /** Extendee type name → extension field number → the file declaring the extension. */
  extensions: Map<string, Map<number, DescFile>>;
}

/**
 * Indexes `services`, their files and those files' transitive imports (the well-known types
 * included). Throws when two different files claim the same name, which a generated registry
 * never produces.
 */
export function createDescriptorIndex(services: readonly DescService[]): DescriptorIndex {
  const files = new Map<string, DescFile>();
  const index: Symbols = { symbols: new Map(), messages: new Set(), extensions: new Map() };
  const encoded = new Map<DescFile, Uint8Array>();

  const addFile = (file: DescFile): void => {
    const known = files.get(file.proto.name);
    if (known === file) return;
    if (known !== undefined) throw new Error(`two files named ${file.proto.name}`);
    files.set(file.proto.name, file);
    indexSymbols(file, index);
    for (const dep of file.dependencies) addFile(dep);
  };
  for (const service of services) addFile(service.file);

  const bytesOf = (file: DescFile): Uint8Array => {
    let bytes = encoded.get(file);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      encoded.set(file, bytes);
    }
    return bytes;
  };

  return {
    services: [...new Set(services.map((s) => s.typeName))],
    fileByName: (name) => files.get(name),
    fileContainingSymbol: (symbol) => index.symbols.get(withoutLeadingDot(symbol)),
    fileContainingExtension: (extendee, number) =>
      index.extensions.get(withoutLeadingDot(extendee))?.get(number),
    extensionNumbersOf(extendee) {
      const name = withoutLeadingDot(extendee);
      if (!index.messages.has(name)) return undefined;
      return [...(index.extensions.get(name)?.keys() ?? [])];
    },
    withDependencies(file, sent) {
      const out = [bytesOf(file)];
      sent.add(file.proto.name);
      const seen = new Set<DescFile>([file]);
      const queue = [...file.dependencies];
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        if (seen.has(next)) continue;
        seen.add(next);
        if (!sent.has(next.proto.name)) {
          out.push(bytesOf(next));
          sent.add(next.proto.name);
        }
        queue.push(...next.dependencies);
      }
      return out;
    },
  };
}

/**
 * Records every symbol `file` declares, its message types, and its extensions by extendee. It
 * walks the `FileDescriptorProto` rather than protobuf-es's descriptors, which leave out map
 * entry messages (`google.protobuf.Struct.FieldsEntry`), so that every name a client finds in a
 * served file can be asked for.
 */
function indexSymbols(file: DescFile, index: Symbols): void {
  const add = (name: string) => index.symbols.set(name, file);
  const scoped = (scope: string, name: string) => (scope === "" ? name : `${scope}.${name}`);
  const enums = (scope: string, list: readonly EnumDescriptorProto[]) => {
    for (const e of list) {
      add(scoped(scope, e.name));
      // Enum values are siblings of their enum (protobuf's C++ scoping rules).
      for (const value of e.value) add(scoped(scope, value.name));
    }
  };
  const extensions = (scope: string, list: readonly FieldDescriptorProto[]) => {
    for (const ext of list) {
      add(scoped(scope, ext.name));
      const extendee = withoutLeadingDot(ext.extendee);
      let numbers = index.extensions.get(extendee);
      if (numbers === undefined) {
        numbers = new Map();
        index.extensions.set(extendee, numbers);
      }
      numbers.set(ext.number, file);
    }
  };
  const messages = (scope: string, list: readonly DescriptorProto[]) => {
    for (const m of list) {
      const name = scoped(scope, m.name);
      add(name);
      index.messages.add(name);
      for (const field of m.field) add(`${name}.${field.name}`);
      for (const oneof of m.oneofDecl) add(`${name}.${oneof.name}`);
      messages(name, m.nestedType);
      enums(name, m.enumType);
      extensions(name, m.extension);
    }
  };
  const { proto } = file;
  messages(proto.package, proto.messageType);
  enums(proto.package, proto.enumType);
  extensions(proto.package, proto.extension);
  for (const service of proto.service) {
    const name = scoped(proto.package, service.name);
    add(name);
    for (const method of service.method) add(`${name}.${method.name}`);
  }
}

function withoutLeadingDot(name: string): string {
  return name.startsWith(".") ? name.slice(1) : name;
}
