//! Provider keys rotate without a restart: a key file that changes (as a Kubernetes secret
//! volume does) is re-read, calls in flight keep the key they were sent with, new calls use
//! the new one, and no call fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use crate::common::{
    TestServer, chat,
    fake_upstream::{FakeUpstream, Reply},
};

const OLD: &str = "sk-old-key-0123456789abcdefghij";
const NEW: &str = "sk-new-key-9876543210zyxwvutsrq";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_file_is_used_by_new_calls_and_no_call_fails() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("openai-key");
    std::fs::write(&key_file, format!("{OLD}\n")).unwrap();
    let yaml = format!(
        "providers:\n  openai: {{kind: openai, base_url: \"{}/v1\", api_key_file: {}, disable_proxy: true}}\nroutes: [{{name: gpt, targets: [{{provider: openai, model: gpt-4o}}]}}]\n",
        fake.url(""),
        key_file.display()
    );
    let server = TestServer::start(&yaml).await;

    let mut workers = Vec::new();
    for _ in 0..8 {
        let mut client = server.client().await;
        workers.push(tokio::spawn(async move {
            for _ in 0..40 {
                client.chat(chat("gpt", "hi")).await.expect("no call may fail during a rotation");
            }
        }));
    }
    // Rotate while the load runs: write the file the way a secret volume update lands.
    while fake.received().len() < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let staged = dir.path().join("openai-key.new");
    std::fs::write(&staged, NEW).unwrap();
    std::fs::rename(&staged, &key_file).unwrap();
    assert_eq!(server.gateway.reload_keys(), 1, "one provider key changed");
    let sent_before = fake.received().len();
    for w in workers {
        w.await.unwrap();
    }

    let keys: Vec<String> =
        fake.received().iter().map(|r| r.header("authorization").unwrap().to_owned()).collect();
    assert_eq!(keys.len(), 320);
    let (old, new) = (format!("Bearer {OLD}"), format!("Bearer {NEW}"));
    assert!(keys.iter().all(|k| k == &old || k == &new));
    let first_new = keys.iter().position(|k| k == &new).expect("the new key was used");
    assert!(keys[..first_new].iter().all(|k| k == &old));
    // Each of the 8 workers may have had one call on its way, with the old key, when the key
    // was swapped; every call started after it carries the new one.
    let late_old = keys[sent_before..].iter().filter(|k| *k == &old).count();
    assert!(late_old <= 8, "{late_old} calls used the old key after the rotation");
    let last_old = keys.iter().rposition(|k| k == &old).unwrap();
    assert!(last_old < sent_before + 8, "an old key long after the rotation");
    assert!(keys.len() - first_new > 150, "most calls ran after the rotation");
    assert_eq!(server.gateway.reload_keys(), 0, "nothing changed since");
}

#[tokio::test]
async fn an_empty_or_missing_key_file_keeps_the_key_in_force() {
    let fake = FakeUpstream::start(vec![Reply::json(200, "openai/chat.json")]).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("openai-key");
    std::fs::write(&key_file, OLD).unwrap();
    let yaml = format!(
        "providers:\n  openai: {{kind: openai, base_url: \"{}/v1\", api_key_file: {}, disable_proxy: true}}\nroutes: [{{name: gpt, targets: [{{provider: openai, model: gpt-4o}}]}}]\n",
        fake.url(""),
        key_file.display()
    );
    let server = TestServer::start(&yaml).await;
    std::fs::write(&key_file, "").unwrap();
    assert_eq!(server.gateway.reload_keys(), 0);
    std::fs::remove_file(&key_file).unwrap();
    assert_eq!(server.gateway.reload_keys(), 0);
    server.client().await.chat(chat("gpt", "hi")).await.unwrap();
    assert_eq!(fake.only_request().header("authorization"), Some(format!("Bearer {OLD}").as_str()));
}
