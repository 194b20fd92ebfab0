//! The generated protobuf types and tonic stubs of the public API (`proto/aiservice/v1`), the
//! codec they encode and decode messages with, and the encoded descriptor sets that server
//! reflection serves.

use std::marker::PhantomData;

use tonic::codec::BufferSettings;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// `aiservice.v1`: the chat API.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("aiservice.v1");
}

/// The first size of a call's encode and decode buffers: 1 KiB instead of tonic's 8 KiB. A
/// stream keeps its encode buffer for as long as it is open (8 KiB of each of 1,000 open
/// streams was 8 MiB), while its messages, and most requests and replies, are a few hundred
/// bytes; a larger message grows the buffer as it is written. A block this size is also one
/// the allocator hands out on its fast path.
const BUFFER_SIZE: usize = 1024;

/// How many encoded bytes a stream gathers before handing them to the transport: tonic's own.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// prost's codec with [`BUFFER_SIZE`] buffers; what the generated services and clients use
/// (build.rs names it).
#[derive(Debug, Clone, Copy)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

fn buffer_settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(buffer_settings())
    }
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
