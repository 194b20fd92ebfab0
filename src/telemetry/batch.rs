//! Log lines on their way to stderr, written in batches.
//!
//! The log layer ([`super::lines`]) formats each line whole and hands it to [`Batched`]. An
//! `info` line (or a more verbose one) waits in one buffer with the lines after it, at most
//! `log.flush_interval` (50 ms by default); then one write takes them all out. Writing each
//! line at once cost a `write` system call per call — and, with several threads logging, a
//! contended lock on stderr — 3.5% of the gateway's CPU at c=16 (bench/profile.sh).
//!
//! A `warn` or `error` line is written at once, after the lines waiting before it: a failure
//! is on stderr the moment it is logged, in order. Everything waiting is written when the
//! process ends ([`LogFlush`], held by `main`), when it panics (a panic hook) and when the
//! buffer passes 64 KiB. An interval of zero writes every line at once.
//!
//! One thread, `log-flush`, waits for the first line into an empty buffer, sleeps out the
//! interval and writes; an idle gateway wakes it never, a busy one once an interval.

use std::{
    io::{self, Write},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Waiting bytes past which the line that crossed the mark writes the batch itself.
const MAX_WAITING: usize = 64 * 1024;

/// The largest batch buffer kept for the next batch (one burst of long lines must not keep
/// its memory for good).
const MAX_KEPT: usize = 1024 * 1024;

/// Log lines to `W`, batched; see the module docs. Clones share the buffer.
pub struct Batched<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for Batched<W> {
    fn clone(&self) -> Self {
        Batched { shared: self.shared.clone() }
    }
}

struct Shared<W> {
    waiting: Mutex<Waiting>,
    /// The output, locked while a batch is written, so batches leave in the order they were
    /// taken from `waiting` (taken only under this lock).
    out: Mutex<Output<W>>,
    /// Wakes the flusher when a line arrives into an empty buffer while it waits for one.
    arrived: Condvar,
    interval: Duration,
}

#[derive(Default)]
struct Waiting {
    lines: Vec<u8>,
    /// The flusher waits on `arrived` (a notification with nobody waiting still costs a
    /// system call, so one is sent only when this is set).
    flusher_waits: bool,
    /// Closed ([`LogFlush`] dropped, or no flusher thread): every line is written at once.
    closed: bool,
}

struct Output<W> {
    out: W,
    /// The buffer a batch is swapped into, kept for the next one.
    batch: Vec<u8>,
}

impl<W: Write + Send + 'static> Batched<W> {
    /// Lines to `out`, each waiting at most `interval`; with a zero interval (or when the
    /// flusher thread cannot be started) every line is written at once.
    pub fn start(out: W, interval: Duration) -> Batched<W> {
        let shared = Arc::new(Shared {
            waiting: Mutex::new(Waiting { closed: interval.is_zero(), ..Waiting::default() }),
            out: Mutex::new(Output { out, batch: Vec::new() }),
            arrived: Condvar::new(),
            interval,
        });
        if !interval.is_zero() {
            let flusher = shared.clone();
            let started =
                std::thread::Builder::new().name("log-flush".into()).spawn(move || flusher.run());
            if let Err(e) = started {
                lock(&shared.waiting).closed = true;
                let _ = writeln!(
                    lock(&shared.out).out,
                    "ai-service: cannot start the log flusher ({e}); writing each log line at once"
                );
            }
        }
        Batched { shared }
    }

    /// Writes every waiting line now.
    pub fn flush(&self) {
        self.shared.write_batch(&[]);
    }

    /// Writes every waiting line now unless a write is under way: for a panic hook, which
    /// may run on a thread that panicked holding a lock here (taking it again could deadlock).
    pub fn flush_unless_busy(&self) {
        let Ok(mut out) = self.shared.out.try_lock() else { return };
        let Ok(waiting) = self.shared.waiting.try_lock() else { return };
        out.write(waiting, &[]);
    }

    /// Writes what waits and every line from now on at once; the flusher thread ends.
    pub fn close(&self) {
        {
            let mut waiting = lock(&self.shared.waiting);
            waiting.closed = true;
            if waiting.flusher_waits {
                self.shared.arrived.notify_one();
            }
        }
        self.flush();
    }

    /// A guard that [`close`](Self::close)s these lines when dropped.
    pub fn guard(&self) -> LogFlush {
        let batched = self.clone();
        LogFlush { close: Box::new(move || batched.close()) }
    }

    fn line(&self, line: &[u8], urgent: bool) {
        if !urgent {
            let mut waiting = lock(&self.shared.waiting);
            if !waiting.closed {
                let was_empty = waiting.lines.is_empty();
                waiting.lines.extend_from_slice(line);
                if waiting.lines.len() < MAX_WAITING {
                    if was_empty && std::mem::take(&mut waiting.flusher_waits) {
                        self.shared.arrived.notify_one();
                    }
                    return;
                }
                // Past the mark: this line writes the batch (below).
                drop(waiting);
                return self.flush();
            }
        }
        self.shared.write_batch(line);
    }
}

impl<W: Write> Output<W> {
    /// Takes the waiting lines (and lets go of `waiting`), then writes them and `line` in one
    /// write. Only ever called holding the output's lock: batches leave in the order taken.
    fn write(&mut self, mut waiting: MutexGuard<'_, Waiting>, line: &[u8]) {
        std::mem::swap(&mut self.batch, &mut waiting.lines);
        drop(waiting);
        if self.batch.is_empty() && line.is_empty() {
            return;
        }
        self.batch.extend_from_slice(line);
        // Logging never fails the caller: a closed stderr loses the lines.
        let _ = self.out.write_all(&self.batch).and_then(|()| self.out.flush());
        self.batch.clear();
        if self.batch.capacity() > MAX_KEPT {
            self.batch = Vec::new();
        }
    }
}

impl<W: Write> Shared<W> {
    /// Writes the waiting lines, then `line`, in one write.
    fn write_batch(&self, line: &[u8]) {
        let mut out = lock(&self.out);
        out.write(lock(&self.waiting), line);
    }

    /// The flusher: waits for a line, sleeps out the interval, writes the batch; ends once
    /// closed.
    fn run(&self) {
        loop {
            {
                let mut waiting = lock(&self.waiting);
                while waiting.lines.is_empty() && !waiting.closed {
                    waiting.flusher_waits = true;
                    waiting = self.arrived.wait(waiting).unwrap_or_else(PoisonError::into_inner);
                }
                waiting.flusher_waits = false;
                if waiting.closed {
                    return;
                }
            }
            std::thread::sleep(self.interval);
            self.write_batch(&[]);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes the waiting log lines and every later one at once when dropped: `main` holds it
/// for the life of the process.
#[must_use = "dropping it at once writes every log line unbatched"]
pub struct LogFlush {
    close: Box<dyn Fn() + Send + Sync>,
}

impl LogFlush {
    /// A guard with nothing to write (the logs were set up by someone else).
    pub fn none() -> LogFlush {
        LogFlush { close: Box::new(|| {}) }
    }
}

impl Drop for LogFlush {
    fn drop(&mut self) {
        (self.close)();
    }
}

impl std::fmt::Debug for LogFlush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogFlush")
    }
}

/// One line's writer: the log layer writes each line whole, with one `write_all`.
pub struct LineWriter<'a, W> {
    batched: &'a Batched<W>,
    urgent: bool,
}

impl<W: Write + Send + 'static> Write for LineWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.batched.line(buf, self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for Batched<W> {
    type Writer = LineWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { batched: self, urgent: false }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        // `Level` orders verbose above severe: WARN and ERROR are at most WARN.
        LineWriter { batched: self, urgent: *meta.level() <= Level::WARN }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant;

    use super::*;
    use crate::config::LogFormat;

    /// Every write the batcher made, each whole.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Writes {
        fn texts(&self) -> Vec<String> {
            self.0.lock().unwrap().iter().map(|w| String::from_utf8(w.clone()).unwrap()).collect()
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn write(batched: &Batched<Writes>, text: &str, urgent: bool) {
        LineWriter { batched, urgent }.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn info_lines_wait_and_leave_together_in_order() {
        let writes = Writes::default();
        let batched = Batched::start(writes.clone(), HOUR);
        for i in 0..3 {
            write(&batched, &format!("info {i}\n"), false);
        }
        assert!(writes.texts().is_empty(), "nothing written within the interval");
        batched.flush();
        assert_eq!(writes.texts(), ["info 0\ninfo 1\ninfo 2\n"], "one write, in order");
        batched.flush();
        assert_eq!(writes.texts().len(), 1, "an empty buffer writes nothing");
    }

    #[test]
    fn the_flusher_writes_them_within_the_interval() {
        let writes = Writes::default();
        let batched = Batched::start(writes.clone(), Duration::from_millis(20));
        // Twice: the flusher goes back to waiting after a batch and wakes for the next line.
        for round in 0..2 {
            write(&batched, &format!("round {round} a\n"), false);
            write(&batched, &format!("round {round} b\n"), false);
            let deadline = Instant::now() + Duration::from_secs(10);
            while writes.texts().len() <= round && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(writes.texts()[round], format!("round {round} a\nround {round} b\n"));
        }
    }

    #[test]
    fn a_warning_takes_the_waiting_lines_with_it_at_once() {
        let writes = Writes::default();
        let batched = Batched::start(writes.clone(), HOUR);
        write(&batched, "info before\n", false);
        write(&batched, "warn now\n", true);
        assert_eq!(writes.texts(), ["info before\nwarn now\n"]);
        write(&batched, "error alone\n", true);
        assert_eq!(writes.texts()[1], "error alone\n");
    }

    #[test]
    fn through_the_log_layer_warnings_and_errors_are_urgent() {
        use tracing_subscriber::{Registry, layer::SubscriberExt};
        let writes = Writes::default();
        let batched = Batched::start(writes.clone(), HOUR);
        let lines = super::super::lines::LogLines::new(LogFormat::Text, batched.clone());
        tracing::subscriber::with_default(Registry::default().with(lines), || {
            tracing::info!("an info line");
            tracing::debug!("a debug line");
            assert!(writes.texts().is_empty(), "info and debug wait");
            tracing::warn!("a warning");
            assert_eq!(writes.texts().len(), 1, "a warning is written at once");
            tracing::error!("an error");
        });
        let texts = writes.texts();
        assert_eq!(texts.len(), 2, "{texts:?}");
        let first: Vec<&str> = texts[0].lines().collect();
        assert!(first[0].ends_with("an info line"), "{first:?}");
        assert!(first[1].ends_with("a debug line"), "{first:?}");
        assert!(first[2].ends_with("a warning"), "{first:?}");
        assert!(texts[1].ends_with("an error\n"), "{texts:?}");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_line_that_fills_it() {
        let writes = Writes::default();
        let batched = Batched::start(writes.clone(), HOUR);
        let line = format!("{}\n", "x".repeat(999));
        for _ in 0..MAX_WAITING / line.len() {
            write(&batched, &line, false);
        }
        assert!(writes.texts().is_empty());
        write(&batched, &line, false);
        let texts = writes.texts();
        assert_eq!(texts.len(), 1);
        assert_eq!(texts[0].len(), (MAX_WAITING / line.len() + 1) * line.len());
    }

    #[test]
    fn closing_writes_what_waits_and_every_later_line_at_once() {
        let writes = Writes::default();
        let batched = Batched::start(writes.clone(), HOUR);
        write(&batched, "waiting\n", false);
        drop(batched.guard());
        assert_eq!(writes.texts(), ["waiting\n"]);
        write(&batched, "after\n", false);
        assert_eq!(writes.texts(), ["waiting\n", "after\n"]);
    }

    #[test]
    fn the_panic_flush_writes_what_waits_but_never_waits_for_a_lock() {
        let writes = Writes::default();
        let batched = Batched::start(writes.clone(), HOUR);
        write(&batched, "before the panic\n", false);
        {
            // A write under way (or a thread that panicked inside one): the flush gives up.
            let _writing = batched.shared.out.lock().unwrap();
            batched.flush_unless_busy();
        }
        assert!(writes.texts().is_empty());
        batched.flush_unless_busy();
        assert_eq!(writes.texts(), ["before the panic\n"]);
    }

    #[test]
    fn a_zero_interval_writes_each_line_at_once() {
        let writes = Writes::default();
        let batched = Batched::start(writes.clone(), Duration::ZERO);
        write(&batched, "one\n", false);
        write(&batched, "two\n", false);
        assert_eq!(writes.texts(), ["one\n", "two\n"]);
    }

    #[test]
    fn lines_of_many_threads_arrive_whole_and_each_thread_in_order() {
        let writes = Writes::default();
        let batched = Batched::start(writes.clone(), Duration::from_millis(1));
        std::thread::scope(|s| {
            for t in 0..4 {
                let batched = &batched;
                s.spawn(move || {
                    for i in 0..2000 {
                        // Some warnings, which write through, among the batched lines.
                        write(
                            batched,
                            &format!("t{t} line {i:04} {}\n", "y".repeat(i % 300)),
                            i % 97 == 0,
                        );
                    }
                });
            }
        });
        batched.close();
        let all = writes.texts().concat();
        let mut next = [0; 4];
        for line in all.lines() {
            let (t, rest) = line[1..].split_once(" line ").unwrap();
            let (i, pad) = rest.split_once(' ').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines in order");
            assert_eq!(pad.len(), i % 300, "whole");
            next[t] += 1;
        }
        assert_eq!(next, [2000; 4], "every line");
    }
}
