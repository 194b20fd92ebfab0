//! The generated protobuf types and tonic stubs of the public API (`proto/aiservice/v1`), and
//! the encoded descriptor sets that server reflection serves.

/// `aiservice.v1`: the chat API.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("aiservice.v1");
}

/// The encoded `FileDescriptorSet` of `proto/`, comments included, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/aiservice_descriptor.bin"));

/// The encoded `FileDescriptorSet` of `google/rpc/error_details.proto` and `status.proto`
/// (vendored in `proto-deps/`) with their `google/protobuf` imports, comments included: the
/// types of the `grpc-status-details-bin` details (`ErrorInfo`, `BadRequest`, `RetryInfo`),
/// served by reflection so that grpcurl prints them decoded rather than as base64.
pub const ERROR_DETAILS_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/error_details_descriptor.bin"));
