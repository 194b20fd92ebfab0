//! The generated protobuf types and tonic stubs of the public API (`proto/aiservice/v1`), and
//! the encoded descriptor set that server reflection serves.

/// `aiservice.v1`: the chat API.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("aiservice.v1");
}

/// The encoded `FileDescriptorSet` of `proto/`, comments included, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/aiservice_descriptor.bin"));
