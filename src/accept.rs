//! The gRPC port's accept loop: a connection reaches the server only once it has shown it is a
//! client, within `server.handshake_timeout`.
//!
//! With TLS that means a finished handshake ([`crate::tls`]); without it, the 24-byte HTTP/2
//! client preface, which every gRPC client sends first, or (for the HTTP front doors and
//! gRPC-Web on the same port) a complete HTTP/1.1 request head. A connection that sends nothing, or dribbles
//! its first bytes (slowloris), is closed when the time is up instead of holding a socket
//! until the process runs out of file descriptors. Each connection waits in its own
//! task, so a slow one holds up nobody else. What happens after the preface is bounded by the
//! HTTP/2 keepalive PINGs the server sends (`server.keepalive_interval` / `keepalive_timeout`):
//! a peer that does not answer one is disconnected.

use std::{future::Future, io, net::SocketAddr, time::Duration};

use futures::Stream;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::{JoinHandle, JoinSet},
};
use tokio_stream::wrappers::ReceiverStream;

/// What an HTTP/2 client sends before anything else (RFC 9113, section 3.4).
pub const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How often a connection that sent part of the preface is looked at again: the rest normally
/// comes in the same segment, so only a dribbling client ever waits on this.
const PARTIAL_PREFACE_POLL: Duration = Duration::from_millis(10);

/// Accepts connections on `listener` and yields what `handshake` makes of each one that
/// completes it within `timeout`; the others are closed. The returned task owns the accept
/// loop and the pending handshakes: abort it to stop them.
pub fn incoming<IO, F, Fut>(
    listener: TcpListener,
    timeout: Duration,
    handshake: F,
) -> (impl Stream<Item = io::Result<IO>>, JoinHandle<()>)
where
    IO: Send + 'static,
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<IO>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        let mut pending = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        // Small gRPC frames must not wait for Nagle.
                        let _ = tcp.set_nodelay(true);
                        let (tx, shake) = (tx.clone(), handshake(tcp));
                        pending.spawn(async move {
                            match tokio::time::timeout(timeout, shake).await {
                                Ok(Ok(conn)) => {
                                    let _ = tx.send(Ok(conn)).await;
                                }
                                Ok(Err(e)) => log_refused(peer, &e.to_string()),
                                Err(_) => log_refused(peer, "handshake timed out"),
                            }
                        });
                    }
                    Err(e) => {
                        // Out of fds, usually: back off rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = pending.join_next(), if !pending.is_empty() => {}
            }
        }
    });
    (ReceiverStream::new(rx), task)
}

fn log_refused(peer: SocketAddr, why: &str) {
    tracing::debug!(%peer, why, "connection closed before it was served");
}

/// How much of an HTTP/1.1 request head is looked at for its end; a longer head goes on to the
/// server, which has its own limit.
const HEAD_PEEK: usize = 16 * 1024;

/// The plaintext handshake: waits until the whole HTTP/2 client preface has arrived, or
/// else the whole head of an HTTP/1.1 request (up to its blank line), without consuming
/// anything: the server reads it as usual and answers whatever it is.
pub async fn preface(tcp: TcpStream) -> io::Result<TcpStream> {
    let mut buf = vec![0u8; HEAD_PEEK];
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the preface"));
        }
        let seen = &buf[..n];
        let complete = if HTTP2_PREFACE.starts_with(&seen[..n.min(HTTP2_PREFACE.len())]) {
            n >= HTTP2_PREFACE.len()
        } else {
            n == HEAD_PEEK || seen.windows(4).any(|w| w == b"\r\n\r\n")
        };
        if complete {
            return Ok(tcp);
        }
        // Part of it: `peek` would return at once again, so wait a little.
        tokio::time::sleep(PARTIAL_PREFACE_POLL).await;
    }
}
