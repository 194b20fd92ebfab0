"""Asks ai-service one question, whole and then streamed.

    python examples/chat.py --addr 127.0.0.1:8080 --plaintext hello world
"""

import argparse
import os

from aiservice import Client, collect, text_of, user
from aiservice.v1 import chat_pb2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", default="127.0.0.1:8080")
    parser.add_argument("--plaintext", action="store_true")
    parser.add_argument("--model", default="echo")
    parser.add_argument("prompt", nargs="*", default=["hello", "world"])
    args = parser.parse_args()
    prompt = " ".join(args.prompt)

    with Client(args.addr, plaintext=args.plaintext, api_key=os.environ.get("AI_SERVICE_KEY")) as client:
        reply = client.chat.Chat(chat_pb2.ChatRequest(model=args.model, messages=[user(prompt)]), timeout=30)
        print(f"Chat: {text_of(reply.message)!r} ({reply.usage.total_tokens} tokens)")

        stream = client.chat.StreamChat(chat_pb2.StreamChatRequest(model=args.model, messages=[user(prompt)]), timeout=30)
        result = collect(stream)
        print(f"StreamChat: {result.text!r} ({chat_pb2.FinishReason.Name(result.finish.reason)})")


if __name__ == "__main__":
    main()
