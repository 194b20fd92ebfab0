//! The binary's command line: a bad config exits non-zero with a one-line message naming the
//! field, before any port is bound; `check-config` and `--help` work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::{io::Write, net::TcpListener, process::Command};

const BIN: &str = env!("CARGO_BIN_EXE_ai-service");

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn clean() -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars() {
        if name.starts_with("AI_SERVICE") || name.ends_with("_API_KEY") {
            cmd.env_remove(name);
        }
    }
    cmd
}

#[test]
fn check_config_accepts_a_good_file() {
    let file = config_file(
        "providers: {e: {kind: echo}}\nroutes: [{name: a, targets: [{provider: e, model: m}]}]\n",
    );
    let out = clean().arg("check-config").arg(file.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("routes: a"));
}

#[test]
fn check_config_names_the_bad_field_on_one_line() {
    let file =
        config_file("routes:\n  - name: a\n    targets: [{provider: e, model: m, weight: 3}]\n");
    let out = clean().arg("check-config").arg(file.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("routes[0].targets[0].weight"), "{stderr}");
    assert!(stderr.contains("unknown field `weight`"), "{stderr}");
}

#[test]
fn check_config_names_a_bad_tracing_field() {
    for (yaml, field) in [
        ("tracing: {otlp: {endpoint: 'collector:4317'}}\n", "tracing.otlp.endpoint"),
        (
            "tracing: {otlp: {endpoint: 'http://c:4317', protocol: thrift}}\n",
            "tracing.otlp.protocol",
        ),
        ("tracing: {sample_ratio: 2}\n", "tracing.sample_ratio"),
        (
            "tracing: {otlp: {endpoint: 'http://c:4317', headers: {x-key: {value_env: NOT_SET_ANYWHERE}}}}\n",
            "tracing.otlp.headers.x-key.value_env",
        ),
    ] {
        let file = config_file(yaml);
        let out = clean().arg("check-config").arg(file.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{yaml}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(field), "{yaml}: {stderr}");
    }
    let file = config_file("tracing: {otlp: {endpoint: 'http://otel-collector:4317'}}\n");
    let out = clean().arg("check-config").arg(file.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn serve_rejects_a_bad_config_before_binding_its_port() {
    // Hold the port: if the server bound before checking its config it would fail with
    // "address in use" instead of naming the field.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let file = config_file("server: {shutdown_grace: forever}\n");
    let out = clean()
        .args(["--config"])
        .arg(file.path())
        .env("AI_SERVICE__SERVER__LISTEN", addr.to_string())
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.shutdown_grace"), "{stderr}");
    assert!(!stderr.contains("in use"), "{stderr}");
}

#[test]
fn a_misspelt_environment_override_is_rejected() {
    let out = clean()
        .env("AI_SERVICE__SERVER__LISTN", "127.0.0.1:1")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listn"));
}

#[test]
fn a_missing_config_file_is_named() {
    let out = clean().args(["check-config", "/nonexistent/ai-service.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ai-service.yaml"));
}

#[test]
fn help_lists_the_commands() {
    let out = clean().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["serve", "check-config", "healthcheck"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn check_config_lists_vault_references_without_contacting_vault() {
    // Nothing listens at the address: check-config must not try.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let file = config_file(&format!(
        "vault: {{address: 'http://{closed}'}}\nproviders: {{openai: {{api_key_vault: {{path: secret/data/ai/openai, field: key}}}}}}\n"
    ));
    let out = clean()
        .arg("check-config")
        .arg(file.path())
        .env("VAULT_TOKEN", "check-config-token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("not contacted by check-config"), "{stdout}");
    assert!(
        stdout.contains("providers.openai.api_key_vault: secret/data/ai/openai#key"),
        "{stdout}"
    );
    assert!(!stdout.contains("check-config-token"), "{stdout}");

    // Two sources for one key: a config error naming the field.
    let file = config_file(
        "providers: {openai: {api_key_env: K, api_key_vault: {path: a/b, field: k}}}\n",
    );
    let out = clean().arg("check-config").arg(file.path()).env("K", "k").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("providers.openai.api_key_vault"));
}
