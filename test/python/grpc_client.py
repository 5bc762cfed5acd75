"""A gRPC client in another language, for the cross-language end-to-end test.

Usage: grpc_client.py STUBS_DIR HOST:PORT API_KEY

Stubs are generated from proto/ at test time with grpc_tools. Calls a unary RPC and two
server-streaming RPCs over plaintext HTTP/2 (h2c) and prints one JSON object with what came back.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

from cozegateway.v1 import chat_pb2, chat_pb2_grpc  # noqa: E402
from cozegateway.v1 import workflow_pb2, workflow_pb2_grpc  # noqa: E402


def main():
    target, key = sys.argv[2], sys.argv[3]
    auth = (("authorization", "Bearer " + key),)
    out = {}
    with grpc.insecure_channel(target) as channel:
        chat = chat_pb2_grpc.ChatServiceStub(channel)
        reply = chat.Chat(
            chat_pb2.ChatRequest(
                model="coze-echo",
                messages=[chat_pb2.ChatMessage(role=chat_pb2.ROLE_USER, content="hello from python")],
            ),
            metadata=auth,
            timeout=20,
        )
        out["answer"] = reply.answer
        out["conversation_id"] = reply.conversation_id

        kinds, text = [], ""
        for event in chat.ChatStream(
            chat_pb2.ChatStreamRequest(
                model="coze-echo",
                messages=[chat_pb2.ChatMessage(role=chat_pb2.ROLE_USER, content="streamed")],
            ),
            metadata=auth,
            timeout=20,
        ):
            kind = event.WhichOneof("event")
            kinds.append(kind)
            if kind == "delta":
                text += event.delta.text
        out["stream_kinds"] = kinds
        out["stream_text"] = text

        workflows = workflow_pb2_grpc.WorkflowServiceStub(channel)
        params = json_format.ParseDict({"input": "from python"}, workflow_pb2.RunWorkflowRequest().parameters)
        run = workflows.RunWorkflow(
            workflow_pb2.RunWorkflowRequest(model="workflow:7391000000000000001", parameters=params),
            metadata=auth,
            timeout=20,
        )
        out["workflow_output_json"] = run.output_json
        out["workflow_output_value"] = json_format.MessageToDict(run.output)

        try:
            chat.Chat(chat_pb2.ChatRequest(model="coze-echo"), metadata=(("authorization", "Bearer wrong"),), timeout=20)
            out["unauthenticated"] = "no error"
        except grpc.RpcError as err:
            out["unauthenticated"] = err.code().name
    print(json.dumps(out))


if __name__ == "__main__":
    main()
