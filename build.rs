//! Compiles `proto/` into Rust with the pure-Rust `protox` compiler (no `protoc` needed) and
//! writes the encoded descriptor set that server reflection serves, comments included, so
//! `grpcurl describe` shows the same documentation as the generated clients.

use std::{env, path::PathBuf};

use prost::Message as _;

const PROTOS: &[&str] = &["aiservice/v1/chat.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let fds = protox::Compiler::new(["proto"])?
        .include_source_info(true)
        .include_imports(true)
        .open_files(PROTOS)?
        .file_descriptor_set();
    std::fs::write(out_dir.join("aiservice_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
