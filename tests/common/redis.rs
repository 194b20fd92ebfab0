//! A real `redis-server` for the tests that share state between gateways: started by the test
//! itself on a free port of 127.0.0.1, without persistence, and killed when dropped. Debian's
//! `redis-server` package provides the binary; `make test` installs it. A missing binary fails
//! the test: these tests are part of the normal suite, never skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)] // tests fail loudly

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a server may take to start answering PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `redis-server`; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    binary: PathBuf,
    child: Option<Child>,
}

/// The `redis-server` binary: on PATH, or Debian's `/usr/bin/redis-server`.
fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| {
        std::env::split_paths(&p).map(|dir| dir.join("redis-server")).collect::<Vec<_>>()
    });
    on_path
        .chain(std::iter::once(PathBuf::from("/usr/bin/redis-server")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "redis-server not found on PATH or at /usr/bin/redis-server: these tests need a real \
                 Redis. `make test` installs it (apt-get install redis-server); or install it yourself."
            )
        })
}

impl RedisServer {
    /// Starts a server on a free port.
    pub fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = RedisServer { port, binary: binary(), child: None };
        server.spawn();
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers_ping() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("redis-server on port {} exited at start: {status}", self.port);
            }
            assert!(started.elapsed() < START_TIMEOUT, "redis-server did not answer PING");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }

    /// Kills the server (as a crash would) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of one series (`name{labels}` exactly as rendered) in a Prometheus scrape; 0
/// when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(s, _)| *s == series)
        .map_or(0.0, |(_, v)| v.parse().unwrap())
}
