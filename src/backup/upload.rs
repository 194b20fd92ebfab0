//! Putting one object into the store and proving it arrived: every object carries the
//! SHA-256 of its bytes as `sha256` metadata and is read back and hashed after the upload.
//! Audit segments are gzipped to a local temporary file first (so the checksum is known
//! before the upload starts and a retry sends the same bytes), then sent in one request or,
//! above [`super::MULTIPART_THRESHOLD`], as a multipart upload streamed from disk.

use std::{
    io::{self, Read, Write},
    path::Path as FsPath,
};

use futures::StreamExt;
use object_store::{
    Attribute, Attributes, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
    WriteMultipart, path::Path,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{BackupError, CHECKSUM_KEY, MULTIPART_THRESHOLD, Store, hex};

fn attributes(sha256: &str) -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::Metadata(CHECKSUM_KEY.into()), sha256.to_owned().into());
    attributes
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Gzips `source` into `target`; returns the SHA-256 (hex) and size of the gzipped bytes.
/// The gzip header carries no time or name, so the same segment always gives the same bytes.
pub(super) async fn gzip_file(source: &FsPath, target: &FsPath) -> io::Result<(String, u64)> {
    let (source, target) = (source.to_path_buf(), target.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let mut input = std::fs::File::open(&source)?;
        let out = Hashing {
            inner: io::BufWriter::new(std::fs::File::create(&target)?),
            hash: Sha256::new(),
            bytes: 0,
        };
        let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        io::copy(&mut input, &mut encoder)?;
        let mut out = encoder.finish()?;
        out.flush()?;
        out.inner.get_ref().sync_all()?;
        Ok((hex(&out.hash.finalize()), out.bytes))
    })
    .await
    .map_err(io::Error::other)?
}

/// Gunzips `bytes`.
pub(super) fn gunzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// Uploads the file at `path` (its SHA-256 and size known) to `key`, then checks it.
pub(super) async fn put_file(
    store: &Store,
    key: &Path,
    path: &FsPath,
    sha256: &str,
    size: u64,
) -> Result<(), BackupError> {
    let backend = store.backend();
    if size <= MULTIPART_THRESHOLD as u64 {
        let bytes = tokio::fs::read(path).await?;
        let options = PutOptions { attributes: attributes(sha256), ..PutOptions::default() };
        backend.put_opts(key, PutPayload::from(bytes), options).await?;
    } else {
        let options = PutMultipartOptions {
            attributes: attributes(sha256),
            ..PutMultipartOptions::default()
        };
        let upload = backend.put_multipart_opts(key, options).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_THRESHOLD);
        let mut file = tokio::fs::File::open(path).await?;
        let mut chunk = vec![0u8; 1 << 20];
        let streamed: Result<(), BackupError> = async {
            loop {
                let n = file.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                writer.wait_for_capacity(4).await?;
                writer.write(&chunk[..n]);
            }
        }
        .await;
        match streamed {
            Ok(()) => {
                writer.finish().await?;
            }
            Err(e) => {
                // Leave no half-made upload behind; the next attempt starts over.
                let _ = writer.abort().await;
                return Err(e);
            }
        }
    }
    check(store, key, Some(sha256)).await
}

/// Uploads `bytes` to `key` with their checksum, then checks it.
pub(super) async fn put_bytes(
    store: &Store,
    key: &Path,
    bytes: Vec<u8>,
) -> Result<(), BackupError> {
    let sha256 = hex(&Sha256::digest(&bytes));
    let options = PutOptions { attributes: attributes(&sha256), ..PutOptions::default() };
    store.backend().put_opts(key, PutPayload::from(bytes), options).await?;
    check(store, key, Some(&sha256)).await
}

/// Reads `key` whole, checks its bytes against its recorded checksum (and against
/// `expected`, when given) and returns them.
pub(super) async fn fetch_checked(
    store: &Store,
    key: &Path,
    expected: Option<&str>,
) -> Result<Vec<u8>, BackupError> {
    let got = store.backend().get(key).await?;
    let recorded = got
        .attributes
        .get(&Attribute::Metadata(CHECKSUM_KEY.into()))
        .map(|v| v.to_string())
        .unwrap_or_default();
    let mut stream = got.into_stream();
    let mut hash = Sha256::new();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hash.update(&chunk);
        bytes.extend_from_slice(&chunk);
    }
    let computed = hex(&hash.finalize());
    let recorded = if recorded.is_empty() { "none".to_owned() } else { recorded };
    if recorded != computed || expected.is_some_and(|e| e != computed) {
        return Err(BackupError::Corrupted { object: key.to_string(), recorded, computed });
    }
    Ok(bytes)
}

/// Reads `key` back and checks it (see [`fetch_checked`]).
pub(super) async fn check(
    store: &Store,
    key: &Path,
    expected: Option<&str>,
) -> Result<(), BackupError> {
    fetch_checked(store, key, expected).await.map(drop)
}
