//! Backup and disaster recovery against a real S3-compatible server (moto's server mode,
//! from `.tools/venv-stores`, built by `make tools`): round trip, retention over a faked
//! clock, the store down then back, two replicas in one bucket, SIGTERM to the real binary,
//! and `backup verify` naming a corrupted object. One moto serves every test but the one
//! that kills it; each test has its own bucket or prefix.

use std::{
    io::Write,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, OnceLock},
    time::{Duration, Instant, SystemTime},
};

use crate::common;
use ai_service::{
    Config,
    audit::{AuditRecord, AuditSink, rotate},
    backup::{
        ObjectKind, Store,
        restore::{self, list},
        task::{self, BackupTask},
    },
    config::BackupConfig,
    metrics::{PrometheusMetrics, Recorder},
};
use object_store::{ObjectStore, ObjectStoreExt, aws::AmazonS3Builder};

/// `moto_server`: `$AI_SERVICE_MOTO` (the Makefile exports it), else `.tools/venv-stores`.
fn moto_path() -> PathBuf {
    let path = std::env::var_os("AI_SERVICE_MOTO").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv-stores/bin/moto_server")
    });
    assert!(
        path.exists(),
        "{} is missing: run `make tools` (it builds .tools/venv-stores)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A moto server. It runs under a shell that kills it when our end of its stdin closes, so
/// not even the shared one outlives the test binary.
struct Moto {
    port: u16,
    child: Child,
}

impl Moto {
    fn start(port: u16) -> Moto {
        let script = format!(
            "'{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; cat >/dev/null; kill $m",
            moto_path().display()
        );
        let child = Command::new("sh").arg("-c").arg(script).stdin(Stdio::piped()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { port, child }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it and waits until the port is closed.
    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn shared_moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| Moto::start(free_port()))
}

/// Creates `bucket` (moto takes an unsigned PUT).
async fn create_bucket(endpoint: &str, bucket: &str) {
    ai_service::provider::http::install_crypto();
    let status =
        reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.unwrap().status();
    assert!(status.is_success(), "creating bucket {bucket}: {status}");
}

fn s3(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    ai_service::provider::http::install_crypto();
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_retry(object_store::RetryConfig { max_retries: 0, ..Default::default() })
            .build()
            .unwrap(),
    )
}

const AWS_ENV: &[(&str, &str)] =
    &[("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")];

/// A config with a rotating audit file in `dir` and backup to `s3://bucket/prefix`.
fn config_yaml(dir: &Path, endpoint: &str, bucket: &str, replica: &str, extra: &str) -> String {
    format!(
        "audit: {{sink: '{}', rotate: {{max_bytes: 1048576, max_age: 1h}}}}\n\
         backup:\n  enabled: true\n  interval: 1h\n  retention_days: 30\n  storage: s3://{bucket}/fleet\n  \
         endpoint: {endpoint}\n  region: us-east-1\n  replica: {replica}\n  retry_max: 300ms\n{extra}",
        dir.join("audit.jsonl").display()
    )
}

fn backup_config(yaml: &str) -> (Config, BackupConfig) {
    let config = Config::from_yaml(yaml, Vec::<(String, String)>::new()).unwrap();
    let backup = config.backup.clone().expect("backup is on");
    (config, backup)
}

fn record(id: &str) -> AuditRecord {
    AuditRecord { request_id: id.to_owned(), method: "Chat", code: "OK", ..AuditRecord::default() }
}

/// The request ids in the audit lines of `text`.
fn request_ids(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

async fn eventually(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const KEYS: &str =
    "- {id: team-a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n";

#[tokio::test]
async fn backup_list_and_restore_round_trip_byte_for_byte() {
    let moto = shared_moto();
    create_bucket(&moto.endpoint(), "round-trip").await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.yaml");
    std::fs::write(&keys, KEYS).unwrap();
    let extra = format!(
        "auth: {{keys_file: '{}'}}\n\
         tracing: {{otlp: {{endpoint: 'http://127.0.0.1:4317', headers: {{authorization: {{value: 'Bearer hunter2'}}}}}}}}\n",
        keys.display()
    );
    let (config, backup) =
        backup_config(&config_yaml(dir.path(), &moto.endpoint(), "round-trip", "r0", &extra));
    let sink = AuditSink::open(&config.audit, Recorder::default()).await.unwrap();
    for i in 0..50 {
        sink.submit(record(&format!("a{i}")));
    }
    sink.rotate().await;
    for i in 0..30 {
        sink.submit(record(&format!("b{i}")));
    }
    sink.close().await;
    let segments = rotate::closed_segments(&backup.audit_file).await.unwrap();
    assert_eq!(segments.len(), 2);
    let originals: Vec<(String, Vec<u8>)> =
        segments.iter().map(|s| (s.name.clone(), std::fs::read(&s.path).unwrap())).collect();

    let store = Store::with_backend(s3(&moto.endpoint(), "round-trip"), &backup.prefix);
    let report = task::run_once(&store, &backup, SystemTime::now()).await.unwrap();
    assert_eq!((report.segments, report.snapshots, report.removed), (2, 2, 0));
    assert!(
        rotate::closed_segments(&backup.audit_file).await.unwrap().is_empty(),
        "uploaded segments leave the disk"
    );
    // Again: nothing new, and the same keys (no duplicate).
    assert_eq!(task::upload_segments(&store, &backup).await.unwrap(), 0);

    let objects = list(&store, None).await.unwrap();
    let kinds: Vec<ObjectKind> = objects.iter().map(|o| o.name.kind).collect();
    assert_eq!(kinds, [ObjectKind::Audit, ObjectKind::Audit, ObjectKind::Config, ObjectKind::Keys]);
    assert!(objects.iter().all(|o| o.key.as_ref().starts_with("fleet/r0/")));

    let to = tempfile::tempdir().unwrap();
    let restored = restore::restore(&store, "r0", to.path(), None).await.unwrap();
    assert_eq!(restored.segments.len(), 2);
    for (name, bytes) in &originals {
        assert_eq!(&std::fs::read(to.path().join("audit").join(name)).unwrap(), bytes, "{name}");
    }
    assert_eq!(std::fs::read_to_string(restored.keys.unwrap()).unwrap(), KEYS);
    let snapshot = std::fs::read_to_string(restored.config.unwrap()).unwrap();
    assert!(!snapshot.contains("hunter2"), "{snapshot}");
    assert!(snapshot.contains("value: '***'"), "{snapshot}");
    assert!(snapshot.contains("max_bytes: 1048576"), "{snapshot}");
}

#[tokio::test]
async fn retention_removes_what_is_older_and_nothing_newer() {
    let moto = shared_moto();
    create_bucket(&moto.endpoint(), "retention").await;
    let dir = tempfile::tempdir().unwrap();
    let (_, backup) =
        backup_config(&config_yaml(dir.path(), &moto.endpoint(), "retention", "r0", ""));
    let store = Store::with_backend(s3(&moto.endpoint(), "retention"), &backup.prefix);
    let day = Duration::from_secs(24 * 3600);
    let t0 = SystemTime::now();
    task::run_once(&store, &backup, t0).await.unwrap();
    task::run_once(&store, &backup, t0 + 10 * day).await.unwrap();
    assert_eq!(list(&store, Some("r0")).await.unwrap().len(), 2);

    let removed =
        restore::apply_retention(&store, "r0", backup.retention, t0 + 29 * day).await.unwrap();
    assert_eq!(removed, 0, "nothing is 30 days old yet");
    let removed =
        restore::apply_retention(&store, "r0", backup.retention, t0 + 35 * day).await.unwrap();
    assert_eq!(removed, 1);
    let left = list(&store, Some("r0")).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].name.file,
        format!("{}.yaml", rotate::stamp(t0 + 10 * day)),
        "the newer one stays"
    );
}

#[tokio::test]
async fn two_replicas_share_a_bucket_without_overwriting() {
    let moto = shared_moto();
    create_bucket(&moto.endpoint(), "two-replicas").await;
    let store = Store::with_backend(s3(&moto.endpoint(), "two-replicas"), "fleet");
    let mut dirs = Vec::new();
    for replica in ["pod-a", "pod-b"] {
        let dir = tempfile::tempdir().unwrap();
        let (config, backup) =
            backup_config(&config_yaml(dir.path(), &moto.endpoint(), "two-replicas", replica, ""));
        let sink = AuditSink::open(&config.audit, Recorder::default()).await.unwrap();
        sink.submit(record(replica));
        sink.close().await;
        task::run_once(&store, &backup, SystemTime::now()).await.unwrap();
        dirs.push(dir);
    }
    assert_eq!(list(&store, None).await.unwrap().len(), 4);
    for replica in ["pod-a", "pod-b"] {
        let to = tempfile::tempdir().unwrap();
        let restored = restore::restore(&store, replica, to.path(), None).await.unwrap();
        assert_eq!(restored.segments.len(), 1);
        let text = std::fs::read_to_string(&restored.segments[0]).unwrap();
        assert_eq!(request_ids(&text), [replica]);
    }
}

#[tokio::test]
async fn segments_wait_while_the_store_is_down_and_go_up_when_it_returns() {
    let port = free_port();
    let mut moto = Moto::start(port);
    create_bucket(&moto.endpoint(), "outage").await;
    let dir = tempfile::tempdir().unwrap();
    let (config, backup) =
        backup_config(&config_yaml(dir.path(), &moto.endpoint(), "outage", "r0", ""));
    let metrics = Recorder::new(Arc::new(PrometheusMetrics::new()));
    let sink = AuditSink::open(&config.audit, metrics.clone()).await.unwrap();
    let store = Store::with_backend(s3(&moto.endpoint(), "outage"), &backup.prefix);
    let task = BackupTask::with_store(store.clone(), backup.clone(), sink.clone(), metrics.clone());
    eventually("the first full backup", Duration::from_secs(5), async || {
        list(&store, None).await.is_ok_and(|objects| !objects.is_empty())
    })
    .await;

    moto.stop();
    for batch in 0..3 {
        for i in 0..10 {
            sink.submit(record(&format!("{batch}-{i}")));
        }
        sink.rotate().await;
    }
    eventually("the backlog metric", Duration::from_secs(5), async || {
        metrics.render().unwrap_or_default().contains("ai_service_backup_backlog_segments 3")
    })
    .await;
    assert!(metrics.render().unwrap().contains("ai_service_backup_failures_total"));
    assert_eq!(
        rotate::closed_segments(&backup.audit_file).await.unwrap().len(),
        3,
        "they wait on disk"
    );

    let _moto = Moto::start(port); // same port; moto starts empty
    create_bucket(&_moto.endpoint(), "outage").await;
    eventually("the backlog to drain", Duration::from_secs(8), async || {
        rotate::closed_segments(&backup.audit_file).await.unwrap().is_empty()
    })
    .await;
    sink.close().await;
    task.finish(Duration::from_secs(5)).await;
    let to = tempfile::tempdir().unwrap();
    let restored = restore::restore(&store, "r0", to.path(), None).await.unwrap();
    let ids: Vec<String> = restored
        .segments
        .iter()
        .flat_map(|s| request_ids(&std::fs::read_to_string(s).unwrap()))
        .collect();
    let expected: Vec<String> =
        (0..3).flat_map(|b| (0..10).map(move |i| format!("{b}-{i}"))).collect();
    assert_eq!(ids, expected, "every record, in order, no gap");
    assert!(metrics.render().unwrap().contains("ai_service_backup_backlog_segments 0"));
}

#[tokio::test]
async fn sigterm_mid_segment_loses_no_audit_record() {
    let moto = shared_moto();
    create_bucket(&moto.endpoint(), "sigterm").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config_yaml(dir.path(), &moto.endpoint(), "sigterm", "pod-0", ""))
        .unwrap();
    let binary = common::Binary::start(&path, AWS_ENV, Stdio::null(), Stdio::null()).await;
    let mut client =
        ai_service::proto::v1::chat_service_client::ChatServiceClient::new(binary.channel().await);
    let mut ids = Vec::new();
    for i in 0..12 {
        let mut request = tonic::Request::new(common::chat("echo", &format!("call {i}")));
        let id = format!("sigterm-{i}");
        request.metadata_mut().insert("x-request-id", id.parse().unwrap());
        client.chat(request).await.unwrap();
        ids.push(id);
    }
    binary.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(15), binary.wait()).await.unwrap();
    assert!(status.success(), "{status:?}");

    let store = Store::with_backend(s3(&moto.endpoint(), "sigterm"), "fleet");
    let to = tempfile::tempdir().unwrap();
    let restored = restore::restore(&store, "pod-0", to.path(), None).await.unwrap();
    let mut stored: Vec<String> = restored
        .segments
        .iter()
        .flat_map(|s| request_ids(&std::fs::read_to_string(s).unwrap()))
        .collect();
    stored.retain(|id| id.starts_with("sigterm-"));
    assert_eq!(stored, ids, "every call's record reached the store");
    assert!(rotate::closed_segments(&dir.path().join("audit.jsonl")).await.unwrap().is_empty());
}

#[tokio::test]
async fn verify_names_a_corrupted_object_and_fails() {
    let moto = shared_moto();
    create_bucket(&moto.endpoint(), "verify").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let yaml = config_yaml(dir.path(), &moto.endpoint(), "verify", "pod-0", "");
    std::fs::write(&path, &yaml).unwrap();
    let (config, _) = backup_config(&yaml);
    let sink = AuditSink::open(&config.audit, Recorder::default()).await.unwrap();
    sink.submit(record("v1"));
    sink.close().await;
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ai-service"))
            .arg("--config")
            .arg(&path)
            .args(["backup"])
            .args(args)
            .envs(AWS_ENV.iter().copied())
            .output()
            .unwrap()
    };
    let run = cli(&["run"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let listed = String::from_utf8(cli(&["list"]).stdout).unwrap();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(cli(&["verify"]).status.success());

    // Bit rot: new bytes under the old checksum.
    let store = Store::with_backend(s3(&moto.endpoint(), "verify"), "fleet");
    let segment = list(&store, None)
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.name.kind == ObjectKind::Audit)
        .unwrap();
    let got = store.backend().get(&segment.key).await.unwrap();
    let attributes = got.attributes.clone();
    let mut bytes = got.bytes().await.unwrap().to_vec();
    bytes.write_all(b"rot").unwrap();
    let options = object_store::PutOptions { attributes, ..Default::default() };
    store.backend().put_opts(&segment.key, bytes.into(), options).await.unwrap();

    let verify = cli(&["verify"]);
    assert!(!verify.status.success());
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        stderr.contains(segment.key.as_ref()) && stderr.contains("checksum mismatch"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_large_segment_goes_up_in_parts_and_comes_back_whole() {
    use base64::Engine;
    let moto = shared_moto();
    create_bucket(&moto.endpoint(), "multipart").await;
    let dir = tempfile::tempdir().unwrap();
    let (_, backup) =
        backup_config(&config_yaml(dir.path(), &moto.endpoint(), "multipart", "r0", ""));
    // Incompressible lines, so the gzipped segment is over the multipart threshold.
    let mut rng = fastrand::Rng::with_seed(7);
    let mut text = String::new();
    let mut raw = vec![0u8; 3000];
    for i in 0..3100 {
        rng.fill(&mut raw);
        let pad = base64::engine::general_purpose::STANDARD.encode(&raw);
        text.push_str(&format!("{{\"request_id\":\"m{i}\",\"pad\":\"{pad}\"}}\n"));
    }
    let now = SystemTime::now();
    let name = rotate::segment_name(&backup.audit_file, now - Duration::from_secs(60), now);
    std::fs::write(dir.path().join(&name), &text).unwrap();

    let store = Store::with_backend(s3(&moto.endpoint(), "multipart"), &backup.prefix);
    assert_eq!(task::upload_segments(&store, &backup).await.unwrap(), 1);
    let object = list(&store, None).await.unwrap().pop().unwrap();
    assert!(object.size > ai_service::backup::MULTIPART_THRESHOLD as u64, "{} bytes", object.size);
    let meta = store.backend().head(&object.key).await.unwrap();
    assert!(
        meta.e_tag.as_deref().unwrap_or_default().contains('-'),
        "a multipart ETag: {:?}",
        meta.e_tag
    );

    let to = tempfile::tempdir().unwrap();
    restore::restore(&store, "r0", to.path(), None).await.unwrap();
    assert!(
        std::fs::read_to_string(to.path().join("audit").join(&name)).unwrap() == text,
        "byte for byte"
    );
    assert!(restore::verify(&store, Some("r0")).await.unwrap().corrupted.is_empty());
}

#[tokio::test]
async fn the_backlog_is_bounded_while_the_store_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("http://127.0.0.1:{}", free_port()); // nothing listens there
    let yaml = config_yaml(dir.path(), &nowhere, "nowhere", "r0", "")
        .replace("retry_max: 300ms", "retry_max: 300ms\n  max_backlog_bytes: 4000");
    let (config, backup) = backup_config(&yaml);
    let metrics = Recorder::new(Arc::new(PrometheusMetrics::new()));
    let sink = AuditSink::open(&config.audit, metrics.clone()).await.unwrap();
    let task = BackupTask::with_store(
        Store::with_backend(s3(&nowhere, "nowhere"), "fleet"),
        backup.clone(),
        sink.clone(),
        metrics.clone(),
    );
    for batch in 0..4 {
        for i in 0..4 {
            sink.submit(record(&format!("{batch}-{i}-{}", "x".repeat(40))));
        }
        sink.rotate().await;
    }
    // Four segments of ~1.4 kB over a 4 kB bound: the two oldest go, the newest stay.
    eventually("the oldest segments to be dropped", Duration::from_secs(5), async || {
        let left = rotate::closed_segments(&backup.audit_file).await.unwrap();
        let text = metrics.render().unwrap_or_default();
        left.len() == 2 && text.contains("ai_service_backup_dropped_segments_total 2")
    })
    .await;
    let left = rotate::closed_segments(&backup.audit_file).await.unwrap();
    assert!(left[1].name.contains(&rotate::stamp(left[1].closed)), "{left:?}");
    let newest = std::fs::read_to_string(&left[1].path).unwrap();
    assert!(newest.contains("\"3-0-"), "the newest segment is kept: {newest}");
    sink.close().await;
    task.finish(Duration::from_millis(300)).await;
}
