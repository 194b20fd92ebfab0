//! The few Vault/OpenBao HTTP API shapes the gateway speaks, as typed serde structs: logins,
//! token lookup and renewal, and KV v1/v2 reads. Everything else in a response is ignored.

use std::collections::HashMap;

use serde::{Deserialize, Serialize, de::IgnoredAny};

/// `POST /v1/auth/<mount>/login` of the kubernetes method.
#[derive(Serialize)]
pub struct KubernetesLogin<'a> {
    /// The Vault role.
    pub role: &'a str,
    /// The service-account JWT.
    pub jwt: &'a str,
}

/// `POST /v1/auth/<mount>/login` of the approle method.
#[derive(Serialize)]
pub struct AppRoleLogin<'a> {
    /// The role id.
    pub role_id: &'a str,
    /// The secret id.
    pub secret_id: &'a str,
}

/// A response that carries a token: logins and `renew-self`.
#[derive(Deserialize)]
pub struct AuthResponse {
    /// The token and its lease.
    pub auth: AuthInfo,
}

/// The `auth` block of a login or renewal.
#[derive(Deserialize)]
pub struct AuthInfo {
    /// The token.
    pub client_token: String,
    /// Seconds it lives; 0 for a token that never expires.
    pub lease_duration: u64,
    /// Whether `renew-self` may extend it.
    pub renewable: bool,
}

/// `GET /v1/auth/token/lookup-self`.
#[derive(Deserialize)]
pub struct LookupResponse {
    /// The token's properties.
    pub data: LookupData,
}

/// The properties of a token that decide its renewal.
#[derive(Deserialize)]
pub struct LookupData {
    /// Seconds left; 0 for a token that never expires.
    pub ttl: u64,
    /// Whether `renew-self` may extend it.
    #[serde(default)]
    pub renewable: bool,
}

/// One field of a secret: a string, or anything else (which cannot be a key).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// A string.
    Text(String),
    /// A number, list, object, …
    Other(IgnoredAny),
}

/// The fields of a secret.
pub type Fields = HashMap<String, FieldValue>;

/// A KV v2 read: the fields sit in `data.data`, beside `data.metadata`.
#[derive(Deserialize)]
pub struct KvV2Response {
    /// The version's data and metadata.
    pub data: KvV2Data,
}

/// `data` of a KV v2 read.
#[derive(Deserialize)]
pub struct KvV2Data {
    /// The fields; `null` for a deleted version.
    pub data: Option<Fields>,
    /// The version's metadata (its presence tells v2 from v1).
    #[allow(dead_code)]
    pub metadata: IgnoredAny,
}

/// A KV v1 read: the fields are `data` itself.
#[derive(Deserialize)]
pub struct KvV1Response {
    /// The fields.
    pub data: Fields,
}

/// A KV read of either version, told apart by its shape.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum KvResponse {
    /// `data.data` and `data.metadata`.
    V2(KvV2Response),
    /// `data.<field>`.
    V1(KvV1Response),
}

/// The error body of a failed request.
#[derive(Deserialize)]
pub struct ErrorResponse {
    /// What went wrong, for the log.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// An answer whose body does not matter (e.g. `204 No Content`).
pub type Empty = IgnoredAny;
