//! `aiservice.v1.EmbedService` on the gRPC front door: the request validated into the domain
//! ([`crate::embed::embed_request`]), the pipeline's [`Embedded`] back into protobuf, with
//! the vectors as numbers or as little-endian `f32` bytes as the caller asked. Its calls are
//! begun by the same layer as the chat service's ([`super::layer`]).

use tonic::{Request, Response, Status};

use super::{open, status, usage_to_pb, with_request_id};
use crate::{
    call::Pipeline,
    embed::{self, Embedded, EmbeddingEncoding},
    metrics::Method,
    proto::v1::{self as pb, embed_service_server::EmbedService},
};

/// The embeddings service of the gRPC port; cheap to clone.
#[derive(Clone, Debug)]
pub struct EmbedHandler {
    pipeline: Pipeline,
}

impl EmbedHandler {
    /// The gRPC embeddings door of `pipeline`.
    pub fn new(pipeline: Pipeline) -> Self {
        EmbedHandler { pipeline }
    }
}

#[tonic::async_trait]
impl EmbedService for EmbedHandler {
    async fn embed(
        &self,
        request: Request<pb::EmbedRequest>,
    ) -> Result<Response<pb::EmbedResponse>, Status> {
        let mut call = open(&self.pipeline, Method::Embed, &request).await?;
        let id = call.request_id().to_owned();
        let request = request.into_inner();
        call.asked_inputs(&request.model, request.inputs.len(), &request.metadata);
        let request = match embed::embed_request(request) {
            Ok(request) => request,
            Err(error) => return Err(status(call.refuse(error), &id)),
        };
        let encoding = request.encoding;
        match self.pipeline.embed(call, request).await {
            Ok(embedded) => {
                let bill = embedded.bill.clone();
                let response = Response::new(embedded_to_pb(embedded, encoding));
                let mut response = with_request_id(response, &id);
                super::bill_metadata(&bill, response.metadata_mut());
                Ok(response)
            }
            Err(error) => Err(status(error, &id)),
        }
    }
}

/// An `Embed` answer as protobuf, its vectors in `encoding`.
pub fn embedded_to_pb(e: Embedded, encoding: EmbeddingEncoding) -> pb::EmbedResponse {
    let embeddings = e
        .vectors
        .into_iter()
        .enumerate()
        .map(|(i, values)| {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            match encoding {
                EmbeddingEncoding::Float => pb::Embedding { index, values, data: Vec::new() },
                EmbeddingEncoding::Bytes => {
                    pb::Embedding { index, values: Vec::new(), data: embed::to_le_bytes(&values) }
                }
            }
        })
        .collect();
    pb::EmbedResponse {
        model: e.route,
        provider: e.provider,
        provider_model: e.provider_model,
        embeddings,
        usage: Some(usage_to_pb(e.usage)),
        cost: super::cost_to_pb(e.bill.cost.as_ref()),
    }
}
