"""Generated code for the aiservice.v1 protobuf package (``make generate``; do not edit the
``*_pb2*`` files)."""
