"""botocore (the AWS SDK for Python's core) against the tests' fake Bedrock runtime.

botocore signs with its own SigV4 implementation and reads the replies with its own JSON and
event-stream parsers, so this checks the fake and its fixtures against software nobody here
wrote: the Rust test then verifies botocore's signatures with the same check the gateway's
requests pass. Prints one JSON summary line.
"""
import json
import sys

import botocore.session

url, model = sys.argv[1], sys.argv[2]
client = botocore.session.get_session().create_client(
    "bedrock-runtime",
    endpoint_url=url,
    region_name="us-east-1",
    aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
    aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    aws_session_token="FwoGZXIvYXdzEBYaDHhNTPtSessionTokenExample",
)
messages = [{"role": "user", "content": [{"text": "Weather in Paris?"}]}]
unary = client.converse(modelId=model, messages=messages)
events = []
for event in client.converse_stream(modelId=model, messages=messages)["stream"]:
    (kind, body), = event.items()
    events.append({"event": kind, "payload": body})
print(json.dumps({
    "unary": {
        "content": unary["output"]["message"]["content"],
        "stopReason": unary["stopReason"],
        "usage": unary["usage"],
    },
    "stream": events,
}))
