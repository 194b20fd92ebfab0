//! A restart under load loses no call: two instances behind a client-side round robin that
//! follows each instance's health. The draining instance turns NOT_SERVING first, keeps
//! serving through its shutdown delay while clients move away, finishes its streams, and new
//! calls go to the other instance; then it comes back and takes calls again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use crate::common::{TestServer, collect, stream_chat};
use ai_service::proto::v1::chat_service_client::ChatServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const YAML: &str = r#"
server: {shutdown_delay: 300ms, shutdown_grace: 10s}
providers: {e: {kind: echo, chunk_delay: 3ms}}
routes: [{name: echo, targets: [{provider: e, model: m}]}]
"#;

/// One backend as the client sees it: a connection and whether its health says SERVING.
struct Backend {
    channel: Channel,
    serving: Arc<AtomicBool>,
    served: AtomicUsize,
}

async fn backend(server: &TestServer) -> Arc<Backend> {
    let channel = server.channel().await;
    let serving = Arc::new(AtomicBool::new(false));
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest { service: "aiservice.v1.ChatService".into() })
        .await
        .unwrap()
        .into_inner();
    let flag = serving.clone();
    tokio::spawn(async move {
        while let Ok(Some(update)) = watch.message().await {
            flag.store(update.status() == ServingStatus::Serving, Ordering::SeqCst);
        }
        // The watch ended: the instance is draining or gone.
        flag.store(false, Ordering::SeqCst);
    });
    for _ in 0..100 {
        if serving.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Arc::new(Backend { channel, serving, served: AtomicUsize::new(0) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_no_call() {
    let mut a = TestServer::start(YAML).await;
    let b = TestServer::start(YAML).await;
    let backends = Arc::new(Mutex::new(vec![backend(&a).await, backend(&b).await]));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));

    let mut workers = Vec::new();
    for _ in 0..8 {
        let (backends, stop, next) = (backends.clone(), stop.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut calls = 0usize;
            while !stop.load(Ordering::SeqCst) && calls < 2000 {
                // Round robin over the backends whose health says SERVING.
                let chosen = {
                    let all = backends.lock().unwrap();
                    let serving: Vec<Arc<Backend>> =
                        all.iter().filter(|b| b.serving.load(Ordering::SeqCst)).cloned().collect();
                    assert!(!serving.is_empty(), "no instance is SERVING");
                    serving[next.fetch_add(1, Ordering::Relaxed) % serving.len()].clone()
                };
                let mut client = ChatServiceClient::new(chosen.channel.clone());
                let stream = client
                    .stream_chat(stream_chat("echo", "a b c d e"))
                    .await
                    .expect("the call was refused");
                let (events, status) = collect(stream.into_inner()).await;
                assert!(status.is_none(), "a stream was cut: {status:?}");
                assert_eq!(events.len(), 7, "every event of every stream arrives");
                chosen.served.fetch_add(1, Ordering::Relaxed);
                calls += 1;
            }
            calls
        }));
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    let old_a = backends.lock().unwrap()[0].clone();
    let served_before = old_a.served.load(Ordering::SeqCst);
    assert!(served_before > 0, "instance A took calls before its restart");
    // Restart A: drain it, then start a new instance in its place.
    a.begin_shutdown();
    a.stopped().await.unwrap();
    let a2 = TestServer::start(YAML).await;
    let new_a = backend(&a2).await;
    backends.lock().unwrap()[0] = new_a.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);

    let mut total = 0;
    for worker in workers {
        total += worker.await.unwrap();
    }
    assert!(total > 100, "the load ran: {total} calls");
    assert!(new_a.served.load(Ordering::SeqCst) > 0, "the restarted instance takes calls again");
    let b_served = backends.lock().unwrap()[1].served.load(Ordering::SeqCst);
    assert!(b_served > 0);
    drop(b);
}
