"""A Python gRPC client that knows our contract only through server reflection.

Usage: reflection_client.py STUBS_DIR HOST:PORT API_KEY

STUBS_DIR holds stubs generated at test time from proto/grpc/reflection/v1/reflection.proto only
(with that folder as the include root, so that they do not shadow the `grpc` package): nothing of
the gateway's own contract. Over plaintext HTTP/2 (h2c) and without an API key, it
lists the services, fetches the file declaring ChatService with its imports, builds the message
classes from those descriptors, and then calls Chat with the API key using those classes. Prints
one JSON object with what it learned.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from google.protobuf import descriptor_database, descriptor_pb2, descriptor_pool  # noqa: E402
from google.protobuf import message_factory  # noqa: E402

import reflection_pb2  # noqa: E402
import reflection_pb2_grpc  # noqa: E402


def main():
    target, key = sys.argv[2], sys.argv[3]
    out = {}
    with grpc.insecure_channel(target) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="cozegateway.v1.ChatService"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="cozegateway.v1.Nope"),
            reflection_pb2.ServerReflectionRequest(file_by_filename="cozegateway/v1/common.proto"),
        ]
        # One stream, no API key: the answers come back one per request, in order.
        answers = list(reflection.ServerReflectionInfo(iter(requests), timeout=20))

        out["services"] = [s.name for s in answers[0].list_services_response.service]

        files = []
        for raw in answers[1].file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto()
            fdp.ParseFromString(raw)
            files.append(fdp)
        out["files"] = [f.name for f in files]

        error = answers[2].error_response
        out["unknown_symbol"] = {"code": error.error_code, "message": error.error_message}
        # Sent with ChatService's file already: only the file asked for comes back.
        out["common_again"] = [
            descriptor_pb2.FileDescriptorProto.FromString(raw).name
            for raw in answers[3].file_descriptor_response.file_descriptor_proto
        ]

        db = descriptor_database.DescriptorDatabase()
        for fdp in files:
            db.Add(fdp)
        pool = descriptor_pool.DescriptorPool(db)
        service = pool.FindServiceByName("cozegateway.v1.ChatService")
        out["chat_methods"] = sorted(m.name for m in service.methods)

        factory = message_factory.MessageFactory(pool)
        chat = service.FindMethodByName("Chat")
        request_class = factory.GetPrototype(chat.input_type)
        response_class = factory.GetPrototype(chat.output_type)
        request = request_class(model="coze-echo")
        message = request.messages.add()
        message.role = pool.FindEnumTypeByName("cozegateway.v1.Role").values_by_name["ROLE_USER"].number
        message.content = "hello by reflection"
        call = channel.unary_unary(
            "/cozegateway.v1.ChatService/Chat",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        reply = call(request, metadata=(("authorization", "Bearer " + key),), timeout=20)
        out["answer"] = reply.answer
        try:
            call(request, timeout=20)
            out["without_key"] = "no error"
        except grpc.RpcError as err:
            out["without_key"] = err.code().name
    print(json.dumps(out))


if __name__ == "__main__":
    main()
