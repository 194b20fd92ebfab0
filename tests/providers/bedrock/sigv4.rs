//! An independent check of AWS Signature Version 4, written from AWS's specification with
//! `ring`'s HMAC and SHA-256 (not the `aws-sigv4` crate the gateway signs with): the fake
//! Bedrock recomputes the signature of each request it receives and compares it with the
//! `Authorization` header. The check itself is pinned to AWS's published `get-vanilla` test
//! vector, and, in `bedrock.rs`, to requests signed by botocore.

use ring::{digest, hmac};

/// What a valid signature showed.
#[derive(Debug, PartialEq, Eq)]
pub struct Signed {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// The canonical URI of a path as sent: every byte but the unreserved ones and `/` is
/// percent-encoded again (services other than S3 encode the path twice).
fn canonical_uri(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks the SigV4 `Authorization` header of a request against `secret`. `header` looks a
/// request header up by its lower-case name. Returns what the signature covered, or why it is
/// wrong.
pub fn verify(
    method: &str,
    path: &str,
    query: &str,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    secret: &str,
) -> Result<Signed, String> {
    let authorization = header("authorization").ok_or("no authorization header")?;
    let rest = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| format!("not AWS4-HMAC-SHA256: {authorization}"))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or("malformed authorization")?;
        match k {
            "Credential" => credential = Some(v.to_owned()),
            "SignedHeaders" => signed_headers = Some(v.to_owned()),
            "Signature" => signature = Some(v.to_owned()),
            other => return Err(format!("unknown authorization part {other}")),
        }
    }
    let credential = credential.ok_or("no Credential")?;
    let signed_headers = signed_headers.ok_or("no SignedHeaders")?;
    let signature = signature.ok_or("no Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope.as_slice() else {
        return Err(format!("malformed credential scope {credential}"));
    };
    if *terminator != "aws4_request" {
        return Err(format!("scope ends with {terminator}"));
    }
    let amz_date = header("x-amz-date").ok_or("no x-amz-date")?;
    if !amz_date.starts_with(date) {
        return Err(format!("x-amz-date {amz_date} is not on the scope's date {date}"));
    }
    let names: Vec<String> = signed_headers.split(';').map(str::to_owned).collect();
    for required in ["host", "x-amz-date"] {
        if !names.iter().any(|n| n == required) {
            return Err(format!("{required} is not signed"));
        }
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let value = header(name).ok_or_else(|| format!("signed header {name} is missing"))?;
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let canonical_request = format!(
        "{method}\n{}\n{query}\n{canonical_headers}\n{signed_headers}\n{}",
        canonical_uri(path),
        sha256_hex(body)
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [*region, *service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let expected = hex(&hmac(&key, string_to_sign.as_bytes()));
    if expected != signature {
        return Err(format!(
            "signature {signature} does not match {expected}; canonical request:\n{canonical_request}"
        ));
    }
    Ok(Signed {
        access_key_id: (*access_key_id).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers: names,
    })
}

#[test]
fn the_check_reproduces_aws_get_vanilla_test_vector() {
    // AWS's SigV4 test suite, `get-vanilla`.
    let header = |name: &str| match name {
        "host" => Some("example.amazonaws.com".to_owned()),
        "x-amz-date" => Some("20150830T123600Z".to_owned()),
        "authorization" => Some(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                .to_owned(),
        ),
        _ => None,
    };
    let signed =
        verify("GET", "/", "", &header, b"", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").unwrap();
    assert_eq!(signed.access_key_id, "AKIDEXAMPLE");
    assert!(verify("GET", "/", "", &header, b"", "another-secret").is_err());
    assert!(
        verify("GET", "/x", "", &header, b"", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").is_err()
    );
}
