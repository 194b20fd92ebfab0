//! The benchmark load generator: a fixed number of concurrent workers make `--calls` calls
//! (bounded also by `--max-s`), after `--warmup` calls that are discarded, and print one JSON
//! line: latency percentiles, throughput, time to first token for streams, and — when
//! `--watch-pid` names the gateway — its CPU time per call (utime+stime from /proc/PID/stat,
//! before and after the measured calls) and its RSS, idle and the highest seen under load.
//! The `gw_` figures are of whatever process `--watch-pid` names: bench/run.sh also points it
//! at the null proxy (the floor) and at the fake upstream.
//! The machine's load average is recorded with every result.
//!
//! Modes:
//!   grpc   --addr http://127.0.0.1:P --key K --model M [--stream]   ai-service's ChatService
//!   http   --url http://127.0.0.1:P/v1/chat/completions [--key K] --model M [--stream]
//!          an OpenAI-compatible endpoint: the fake (direct baseline) or LiteLLM
//!   ready  --addr … --key … --model … --since-ns T     ms from T (date +%s%N) to the first
//!          successful Chat call, polling every millisecond for at most --max-s
//!   hold   --addr … --key … --model … --streams 1000 --hold-s 5 --watch-pid P
//!          opens that many StreamChat calls, waits for each one's first event, then reads
//!          the gateway's RSS while all of them are open
//!
//! The protobuf messages it sends and reads are in `bench/src/wire.rs`.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use http::uri::PathAndQuery;
use tonic::{metadata::MetadataValue, transport::Channel};

#[path = "../wire.rs"]
mod wire;
use wire::*;

const ROLE_USER: i32 = 2;


struct Args(Vec<String>);

impl Args {
    /// The value after the last `name`, so that a later option overrides an earlier one.
    fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        self.0
            .iter()
            .rposition(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .map(|v| v.parse().unwrap_or_else(|_| die(&format!("bad value for {name}: {v}"))))
            .unwrap_or(default)
    }
    fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }
}

fn die(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    std::process::exit(2)
}

/// (utime, stime) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// One call's outcome: total latency, time to first token (streams), content chunks.
struct Sample {
    total_ns: u64,
    ttft_ns: u64,
    chunks: u64,
}

#[derive(Clone)]
enum Target {
    Grpc { channels: Vec<Channel>, key: String, model: String, stream: bool },
    Http { client: reqwest::Client, url: String, key: String, body: bytes::Bytes, stream: bool },
}

fn grpc_request(model: &str, key: &str) -> tonic::Request<ChatRequest> {
    let msg = ChatRequest {
        model: model.to_owned(),
        messages: vec![Message { role: ROLE_USER, content: vec![ContentPart { text: Some("hello".into()) }] }],
    };
    let mut req = tonic::Request::new(msg);
    if !key.is_empty() {
        if let Ok(v) = MetadataValue::try_from(format!("Bearer {key}")) {
            req.metadata_mut().insert("authorization", v);
        }
    }
    req.metadata_mut().insert("x-user-id", MetadataValue::from_static("bench"));
    req
}

impl Target {
    async fn call(&self, worker: usize) -> Result<Sample, String> {
        let start = Instant::now();
        match self {
            Target::Grpc { channels, key, model, stream } => {
                let mut grpc = tonic::client::Grpc::new(channels[worker % channels.len()].clone());
                grpc.ready().await.map_err(|e| format!("not ready: {e}"))?;
                if !stream {
                    let codec = tonic_prost::ProstCodec::<ChatRequest, ChatResponse>::default();
                    let path = PathAndQuery::from_static("/aiservice.v1.ChatService/Chat");
                    let resp = grpc.unary(grpc_request(model, key), path, codec).await.map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
                    if resp.get_ref().message.is_none() {
                        return Err("reply without a message".into());
                    }
                    let t = start.elapsed().as_nanos() as u64;
                    Ok(Sample { total_ns: t, ttft_ns: t, chunks: 0 })
                } else {
                    let codec = tonic_prost::ProstCodec::<ChatRequest, StreamChatResponse>::default();
                    let path = PathAndQuery::from_static("/aiservice.v1.ChatService/StreamChat");
                    let mut events = grpc
                        .server_streaming(grpc_request(model, key), path, codec)
                        .await
                        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                        .into_inner();
                    let (mut ttft, mut chunks, mut finished) = (0u64, 0u64, false);
                    while let Some(ev) = events.message().await.map_err(|s| format!("{:?}: {}", s.code(), s.message()))? {
                        if ev.content_delta.as_ref().is_some_and(|d| !d.text.is_empty()) {
                            if chunks == 0 {
                                ttft = start.elapsed().as_nanos() as u64;
                            }
                            chunks += 1;
                        }
                        finished |= ev.finish.is_some();
                    }
                    if !finished {
                        return Err("stream ended without finish".into());
                    }
                    Ok(Sample { total_ns: start.elapsed().as_nanos() as u64, ttft_ns: ttft, chunks })
                }
            }
            Target::Http { client, url, key, body, stream } => {
                let mut rb = client.post(url).header("content-type", "application/json").body(body.clone());
                if !key.is_empty() {
                    rb = rb.header("authorization", format!("Bearer {key}"));
                }
                let resp = rb.send().await.map_err(|e| format!("send: {e}"))?;
                if !resp.status().is_success() {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    return Err(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()));
                }
                if !stream {
                    let b = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
                    if !b.windows(9).any(|w| w == b"\"choices\"") {
                        return Err("reply without choices".into());
                    }
                    let t = start.elapsed().as_nanos() as u64;
                    Ok(Sample { total_ns: t, ttft_ns: t, chunks: 0 })
                } else {
                    let mut body = resp.bytes_stream();
                    let (mut ttft, mut chunks, mut done) = (0u64, 0u64, false);
                    while let Some(b) = body.next().await {
                        let b = b.map_err(|e| format!("body: {e}"))?;
                        if ttft == 0 {
                            ttft = start.elapsed().as_nanos() as u64;
                        }
                        chunks += b.windows(8).filter(|w| w == b"content\"").count() as u64;
                        done |= b.windows(6).any(|w| w == b"[DONE]");
                    }
                    if !done {
                        return Err("stream ended without [DONE]".into());
                    }
                    Ok(Sample { total_ns: start.elapsed().as_nanos() as u64, ttft_ns: ttft, chunks })
                }
            }
        }
    }
}

struct Outcome {
    samples: Vec<Sample>,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
}

async fn run_calls(target: &Target, concurrency: usize, calls: usize, deadline: Instant) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let (target, next, errors, first_error) = (target.clone(), next.clone(), errors.clone(), first_error.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < calls && Instant::now() < deadline {
                match target.call(w).await {
                    Ok(s) => samples.push(s),
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut f) = first_error.lock() {
                            f.get_or_insert(e);
                        }
                    }
                }
            }
            samples
        }));
    }
    let mut samples = Vec::with_capacity(calls);
    for t in tasks {
        if let Ok(s) = t.await {
            samples.extend(s);
        }
    }
    let first_error = first_error.lock().ok().and_then(|mut f| f.take());
    Outcome { samples, errors: errors.load(Ordering::Relaxed), first_error, elapsed: start.elapsed() }
}

async fn channels(addr: &str, n: usize) -> Vec<Channel> {
    let mut out = Vec::new();
    for _ in 0..n.max(1) {
        let ep = tonic::transport::Endpoint::from_shared(addr.to_owned()).unwrap_or_else(|e| die(&format!("--addr: {e}")));
        let ch = ep.tcp_nodelay(true).connect().await.unwrap_or_else(|e| die(&format!("connect {addr}: {e}")));
        out.push(ch);
    }
    out
}

async fn load(a: &Args, mode: &str) {
    let stream = a.flag("--stream");
    let concurrency: usize = a.get("--concurrency", 1);
    let calls: usize = a.get("--calls", 1000);
    let warmup: usize = a.get("--warmup", 200);
    let max_s: f64 = a.get("--max-s", 30.0);
    let watch: u32 = a.get("--watch-pid", 0);
    let clk_tck: f64 = a.get("--clk-tck", 100.0);
    let key: String = a.get("--key", String::new());
    let model: String = a.get("--model", "bench".to_string());
    let label: String = a.get("--label", mode.to_string());
    let target = match mode {
        "grpc" => {
            let addr: String = a.get("--addr", "http://127.0.0.1:8080".to_string());
            let conns = a.get("--connections", concurrency.div_ceil(128));
            Target::Grpc { channels: channels(&addr, conns).await, key, model, stream }
        }
        _ => {
            let url: String = a.get("--url", "http://127.0.0.1:8000/v1/chat/completions".to_string());
            let body = format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"hello"}}]{}}}"#,
                if stream { r#","stream":true"# } else { "" }
            );
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(concurrency.max(1) * 2)
                .tcp_nodelay(true)
                .no_proxy()
                .build()
                .unwrap_or_else(|e| die(&format!("client: {e}")));
            Target::Http { client, url, key, body: body.into(), stream }
        }
    };
    if warmup > 0 {
        let w = run_calls(&target, concurrency, warmup, Instant::now() + Duration::from_secs_f64(max_s)).await;
        if w.errors > 0 && w.samples.is_empty() {
            die(&format!("warm-up: every call failed: {}", w.first_error.unwrap_or_default()));
        }
    }
    let rss_idle = (watch > 0).then(|| rss_kib(watch)).flatten();
    let cpu_before = (watch > 0).then(|| cpu_ticks(watch)).flatten();
    let rss_max = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = (watch > 0).then(|| {
        let (rss_max, stop) = (rss_max.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(r) = rss_kib(watch) {
                    rss_max.fetch_max(r, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    let out = run_calls(&target, concurrency, calls, Instant::now() + Duration::from_secs_f64(max_s)).await;
    stop.store(true, Ordering::Relaxed);
    if let Some(s) = sampler {
        let _ = s.await;
    }
    let cpu_after = (watch > 0).then(|| cpu_ticks(watch)).flatten();
    let mut total: Vec<u64> = out.samples.iter().map(|s| s.total_ns).collect();
    let mut ttft: Vec<u64> = out.samples.iter().map(|s| s.ttft_ns).collect();
    total.sort_unstable();
    ttft.sort_unstable();
    let n = out.samples.len() as f64;
    let chunks: u64 = out.samples.iter().map(|s| s.chunks).sum();
    let mut extra = String::new();
    if let (Some(b), Some(a)) = (cpu_before, cpu_after) {
        let user_us = (a.0 - b.0) as f64 / clk_tck * 1e6;
        let sys_us = (a.1 - b.1) as f64 / clk_tck * 1e6;
        let cpu_us = user_us + sys_us;
        extra += &format!(
            r#","gw_cpu_ms":{:.1},"gw_cpu_us_per_call":{:.1},"gw_user_us_per_call":{:.1},"gw_sys_us_per_call":{:.1}"#,
            cpu_us / 1000.0,
            cpu_us / n.max(1.0),
            user_us / n.max(1.0),
            sys_us / n.max(1.0)
        );
        if chunks > 0 {
            extra += &format!(r#","gw_cpu_us_per_chunk":{:.2}"#, cpu_us / chunks as f64);
        }
    }
    if let Some(r) = rss_idle {
        extra += &format!(r#","gw_rss_idle_kib":{r},"gw_rss_load_max_kib":{}"#, rss_max.load(Ordering::Relaxed));
    }
    if stream {
        extra += &format!(r#","ttft_p50_us":{:.1},"ttft_p99_us":{:.1},"chunks":{chunks}"#, pct(&ttft, 0.5), pct(&ttft, 0.99));
    }
    println!(
        r#"{{"label":"{label}","mode":"{mode}","stream":{stream},"concurrency":{concurrency},"calls":{},"errors":{},"elapsed_s":{:.3},"throughput_rps":{:.1},"p50_us":{:.1},"p90_us":{:.1},"p99_us":{:.1},"max_us":{:.1}{extra},"loadavg":"{}"}}"#,
        out.samples.len(),
        out.errors,
        out.elapsed.as_secs_f64(),
        n / out.elapsed.as_secs_f64().max(1e-9),
        pct(&total, 0.5),
        pct(&total, 0.9),
        pct(&total, 0.99),
        pct(&total, 1.0),
        loadavg()
    );
    if let Some(e) = out.first_error {
        eprintln!("loadgen: {} call(s) failed; first: {e}", out.errors);
    }
}

/// ms from `--since-ns` (wall clock, as `date +%s%N` prints it) to the first successful call.
async fn ready(a: &Args) {
    let since: u128 = a.get("--since-ns", 0);
    let addr: String = a.get("--addr", "http://127.0.0.1:8080".to_string());
    let key: String = a.get("--key", String::new());
    let model: String = a.get("--model", "bench".to_string());
    let deadline = Instant::now() + Duration::from_secs_f64(a.get("--max-s", 10.0));
    let mut tries = 0u32;
    while Instant::now() < deadline {
        tries += 1;
        if let Ok(ep) = tonic::transport::Endpoint::from_shared(addr.clone()) {
            if let Ok(ch) = ep.connect().await {
                let target = Target::Grpc { channels: vec![ch], key: key.clone(), model: model.clone(), stream: false };
                if target.call(0).await.is_ok() {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or_default();
                    let ms = now.saturating_sub(since) as f64 / 1e6;
                    println!(r#"{{"label":"launch","launch_to_first_call_ms":{ms:.1},"tries":{tries},"loadavg":"{}"}}"#, loadavg());
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    die("the gateway did not answer a call in time")
}

/// Opens `--streams` StreamChat calls over `--connections` connections, waits for the first
/// event of each, then samples the gateway's RSS while they are all open.
async fn hold(a: &Args) {
    let n: usize = a.get("--streams", 1000);
    let addr: String = a.get("--addr", "http://127.0.0.1:8080".to_string());
    let key: String = a.get("--key", String::new());
    let model: String = a.get("--model", "bench".to_string());
    let watch: u32 = a.get("--watch-pid", 0);
    let hold_s: f64 = a.get("--hold-s", 3.0);
    let max_s: f64 = a.get("--max-s", 60.0);
    let chans = channels(&addr, a.get("--connections", n.div_ceil(100))).await;
    let rss_before = rss_kib(watch).unwrap_or(0);
    let opened = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let released = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (ch, key, model, opened, release, released) =
            (chans[i % chans.len()].clone(), key.clone(), model.clone(), opened.clone(), release.clone(), released.clone());
        tasks.push(tokio::spawn(async move {
            let mut grpc = tonic::client::Grpc::new(ch);
            grpc.ready().await.map_err(|e| e.to_string())?;
            let codec = tonic_prost::ProstCodec::<ChatRequest, StreamChatResponse>::default();
            let path = PathAndQuery::from_static("/aiservice.v1.ChatService/StreamChat");
            let mut events = grpc.server_streaming(grpc_request(&model, &key), path, codec).await.map_err(|s| s.message().to_owned())?.into_inner();
            events.message().await.map_err(|s| s.message().to_owned())?;
            opened.fetch_add(1, Ordering::Relaxed);
            let wait = release.notified();
            if !released.load(Ordering::Relaxed) {
                wait.await;
            }
            Ok::<_, String>(())
        }));
    }
    let start = Instant::now();
    while opened.load(Ordering::Relaxed) < n && start.elapsed().as_secs_f64() < max_s {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_after_s = start.elapsed().as_secs_f64();
    let mut rss_max = 0;
    let held = Instant::now();
    while held.elapsed().as_secs_f64() < hold_s {
        rss_max = rss_max.max(rss_kib(watch).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open = opened.load(Ordering::Relaxed);
    released.store(true, Ordering::Relaxed);
    release.notify_waiters();
    let mut errors = 0;
    let mut first = None;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                errors += 1;
                first.get_or_insert(e);
            }
            Err(e) => {
                errors += 1;
                first.get_or_insert(e.to_string());
            }
        }
    }
    println!(
        r#"{{"label":"hold","streams":{n},"open":{open},"errors":{errors},"all_open_after_s":{open_after_s:.2},"gw_rss_before_kib":{rss_before},"gw_rss_open_max_kib":{rss_max},"gw_rss_per_stream_kib":{:.1},"loadavg":"{}"}}"#,
        (rss_max as f64 - rss_before as f64) / open.max(1) as f64,
        loadavg()
    );
    if let Some(e) = first {
        eprintln!("loadgen: {errors} stream(s) failed; first: {e}");
    }
}

fn main() {
    let args = Args(std::env::args().collect());
    let mode = args.0.get(1).cloned().unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.get("--workers", 1))
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")));
    runtime.block_on(async {
        match mode.as_str() {
            "grpc" | "http" => load(&args, &mode).await,
            "ready" => ready(&args).await,
            "hold" => hold(&args).await,
            _ => die("usage: loadgen grpc|http|ready|hold [options] (see the doc comment in bench/src/bin/loadgen.rs)"),
        }
    });
}
