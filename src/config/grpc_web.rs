//! `server.grpc_web:` gRPC-Web on the gRPC port, for browsers, and the origins (CORS) whose
//! pages may call it. Read into [`RawGrpcWeb`], then checked into [`GrpcWebConfig`]; the
//! door itself is [`crate::front::grpc_web`].

use serde::Deserialize;

use super::ConfigError;

/// `server.grpc_web:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawGrpcWeb {
    /// Whether gRPC-Web is served on the gRPC port (default true).
    pub enabled: Option<bool>,
    /// The origins (`scheme://host[:port]`) whose pages may call it; none by default, so
    /// only callers that send no `Origin` (not a browser page) get through.
    pub allowed_origins: Vec<String>,
}

/// `server.grpc_web:` validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcWebConfig {
    /// Whether gRPC-Web is served on the gRPC port.
    pub enabled: bool,
    /// The allowed origins, lowercased, as a browser sends them in `Origin`.
    pub allowed_origins: Vec<String>,
}

impl Default for GrpcWebConfig {
    fn default() -> Self {
        GrpcWebConfig { enabled: true, allowed_origins: Vec::new() }
    }
}

/// Checks each origin: a browser sends `scheme://host[:port]` and nothing more, so anything
/// else (a path, a trailing slash, a wildcard) would never match and is a mistake.
pub fn validate(raw: RawGrpcWeb) -> Result<GrpcWebConfig, ConfigError> {
    let mut allowed_origins = Vec::with_capacity(raw.allowed_origins.len());
    for (i, origin) in raw.allowed_origins.iter().enumerate() {
        let path = format!("server.grpc_web.allowed_origins[{i}]");
        let bad = |why: &str| {
            ConfigError::new(
                path.clone(),
                format!("{origin:?} is not an origin (scheme://host[:port]): {why}"),
            )
        };
        let uri: http::Uri = origin.parse().map_err(|_| bad("it does not parse"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(bad("the scheme must be http or https")),
        }
        if uri.authority().is_none_or(|a| a.host().is_empty() || a.as_str().contains('@')) {
            return Err(bad("it needs a host and no user"));
        }
        // `Uri` reads a missing path as "/", so compare the text itself.
        let bare = uri.authority().map(|a| format!("{}://{a}", uri.scheme_str().unwrap_or("")));
        if bare.as_deref() != Some(origin.as_str()) {
            return Err(bad("it has a path (a trailing slash counts)"));
        }
        allowed_origins.push(origin.to_ascii_lowercase());
    }
    Ok(GrpcWebConfig { enabled: raw.enabled.unwrap_or(true), allowed_origins })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Result<GrpcWebConfig, ConfigError> {
        validate(RawGrpcWeb {
            enabled: None,
            allowed_origins: list.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    #[test]
    fn defaults_serve_grpc_web_to_no_origin() {
        let config = origins(&[]).unwrap();
        assert!(config.enabled);
        assert!(config.allowed_origins.is_empty());
    }

    #[test]
    fn origins_are_kept_lowercased() {
        let config = origins(&["http://127.0.0.1:9090", "https://Console.Example.com"]).unwrap();
        assert_eq!(
            config.allowed_origins,
            ["http://127.0.0.1:9090", "https://console.example.com"]
        );
    }

    #[test]
    fn a_bad_origin_names_its_index() {
        for bad in [
            "console.example.com",
            "https://example.com/",
            "https://example.com/app",
            "*",
            "ftp://x",
        ] {
            let error = origins(&["http://ok:1", bad]).unwrap_err();
            assert_eq!(error.path, "server.grpc_web.allowed_origins[1]", "{bad}");
        }
    }
}
