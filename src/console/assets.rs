//! The console's page, script, style and icon, compiled into the binary so the console works
//! offline and the running build always serves its own version of them.

/// One embedded file.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// Its bytes.
    pub body: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
}

const fn asset(body: &'static [u8], content_type: &'static str) -> Asset {
    Asset { body, content_type }
}

/// The asset served at `path`, if any.
pub fn get(path: &str) -> Option<Asset> {
    Some(match path {
        "/" | "/index.html" => {
            asset(include_bytes!("assets/index.html"), "text/html; charset=utf-8")
        }
        "/console.css" => asset(include_bytes!("assets/console.css"), "text/css; charset=utf-8"),
        "/console.js" => {
            asset(include_bytes!("assets/console.js"), "text/javascript; charset=utf-8")
        }
        "/grpcweb.js" => {
            asset(include_bytes!("assets/grpcweb.js"), "text/javascript; charset=utf-8")
        }
        "/favicon.svg" => asset(include_bytes!("assets/favicon.svg"), "image/svg+xml"),
        _ => return None,
    })
}
