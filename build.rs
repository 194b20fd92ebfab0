//! Compiles `proto/` into Rust with the pure-Rust `protox` compiler (no `protoc` needed) and
//! writes the encoded descriptor sets that server reflection serves, comments included, so
//! `grpcurl describe` shows the same documentation as the generated clients.
//!
//! A second set holds `google/rpc/error_details.proto` and `status.proto` (vendored in
//! `proto-deps/`, outside the buf module that generates the clients) with their imports:
//! the types of the error details every failed call carries, which grpcurl can only decode
//! when reflection serves them. tonic-types' own set names them `error_details.proto` and
//! `status.proto`, not their import paths, and has no comments, hence ours.

use std::{env, path::PathBuf};

use prost::Message as _;

const PROTOS: &[&str] = &["aiservice/v1/chat.proto", "aiservice/v1/embed.proto"];
const ERROR_DETAIL_PROTOS: &[&str] = &["google/rpc/error_details.proto", "google/rpc/status.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=proto-deps");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let fds = protox::Compiler::new(["proto"])?
        .include_source_info(true)
        .include_imports(true)
        .open_files(PROTOS)?
        .file_descriptor_set();
    std::fs::write(out_dir.join("aiservice_descriptor.bin"), fds.encode_to_vec())?;

    let error_details = protox::Compiler::new(["proto-deps"])?
        .include_source_info(true)
        .include_imports(true)
        .open_files(ERROR_DETAIL_PROTOS)?
        .encode_file_descriptor_set();
    std::fs::write(out_dir.join("error_details_descriptor.bin"), error_details)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // prost's codec with smaller first buffers (src/proto.rs).
        .codec_path("crate::proto::Codec")
        .compile_fds(fds)?;
    link_layout();
    Ok(())
}

/// The binary's layout (see the module docs); x86-64 Linux (glibc) only, where lld links.
fn link_layout() {
    println!("cargo:rerun-if-changed=link/ai-service.order");
    let cfg = |key: &str| env::var(key).unwrap_or_default();
    if cfg("CARGO_CFG_TARGET_ARCH") != "x86_64"
        || cfg("CARGO_CFG_TARGET_OS") != "linux"
        || cfg("CARGO_CFG_TARGET_ENV") != "gnu"
    {
        return;
    }
    if glibc_reads_relr() {
        println!("cargo:rustc-link-arg-bin=ai-service=-Wl,-z,pack-relative-relocs");
    }
    let order = PathBuf::from(cfg("CARGO_MANIFEST_DIR")).join("link/ai-service.order");
    if order.is_file() {
        // A name the build no longer has is skipped: another compiler or dependency version,
        // or changed code (ThinLTO suffixes the functions it promotes with a hash of their
        // module). The file then packs less until bench/link-order.sh writes it again.
        println!(
            "cargo:rustc-link-arg-bin=ai-service=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=ai-service=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether the glibc this build links against reads packed relative relocations: 2.36 and
/// later define `GLIBC_ABI_DT_RELR`, the version a binary that has them requires. A binary built
/// where glibc is older must start there, so it does without (a cross build too).
fn glibc_reads_relr() -> bool {
    if env::var("HOST").ok() != env::var("TARGET").ok() {
        return false;
    }
    ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"]
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .is_some_and(|libc| libc.windows(17).any(|w| w == b"GLIBC_ABI_DT_RELR"))
}
