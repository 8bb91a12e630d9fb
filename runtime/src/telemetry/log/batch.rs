//! A bounded, lossy log writer that batches lines: events append to a shared
//! buffer and one background thread writes it out every few milliseconds, so a
//! request never waits on stderr and never wakes another thread to log.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long lines wait, at most, before they are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(10);

/// Bytes held between two flushes; lines beyond it are dropped and counted.
const CAPACITY: usize = 4 << 20;

/// A buffer this large after a burst is given back to the allocator once written.
const KEEP_CAPACITY: usize = 256 << 10;

struct Shared {
    lines: Mutex<Vec<u8>>,
    /// Lines dropped because the buffer was full (stderr not keeping up).
    dropped: AtomicU64,
    /// The writer found nothing to write and is parked until the next line.
    idle: AtomicBool,
    stop: AtomicBool,
    writer: OnceLock<Thread>,
}

impl Shared {
    fn lines(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while appending leaves at worst a partial line; keep logging.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hands `tracing` a writer onto the shared buffer.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Keep it alive until exit: dropping it writes what is buffered and stops the
/// writer thread.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `out`.
pub fn batch_writer<W: Write + Send + 'static>(out: W) -> io::Result<(BatchWriter, FlushGuard)> {
    let shared = Arc::new(Shared {
        lines: Mutex::new(Vec::with_capacity(64 << 10)),
        dropped: AtomicU64::new(0),
        idle: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        writer: OnceLock::new(),
    });
    let thread = {
        let shared = shared.clone();
        thread::Builder::new()
            .name("wedge-log".into())
            .spawn(move || write_batches(&shared, out))?
    };
    let _ = shared.writer.set(thread.thread().clone());
    Ok((
        BatchWriter {
            shared: shared.clone(),
        },
        FlushGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::with_capacity(64 << 10);
    loop {
        let stop = shared.stop.load(Ordering::Acquire);
        std::mem::swap(&mut *shared.lines(), &mut batch);
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                batch,
                "wedge: {dropped} log lines dropped: stderr did not keep up"
            );
        }
        let wrote = !batch.is_empty();
        if wrote {
            // Nowhere to report a failed write to; the next batch tries again.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            if batch.capacity() > KEEP_CAPACITY {
                batch = Vec::with_capacity(64 << 10);
            }
        }
        if stop {
            return;
        }
        if !wrote {
            // Nothing came in a whole interval: sleep until a line does.
            shared.idle.store(true, Ordering::SeqCst);
            if shared.lines().is_empty() && !shared.stop.load(Ordering::Acquire) {
                thread::park();
            }
            shared.idle.store(false, Ordering::SeqCst);
        }
        thread::park_timeout(FLUSH_INTERVAL);
    }
}

impl Write for BatchWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut lines = self.shared.lines();
        if lines.len() + buf.len() > CAPACITY {
            drop(lines);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(buf.len());
        }
        lines.extend_from_slice(buf);
        drop(lines);
        // The mutex orders this read after the writer's `idle = true`, if the
        // writer then saw an empty buffer.
        if self.shared.idle.load(Ordering::Relaxed)
            && self.shared.idle.swap(false, Ordering::SeqCst)
            && let Some(writer) = self.shared.writer.get()
        {
            writer.unpark();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn lines_arrive_within_an_interval_and_after_idling() {
        let sink = Sink::default();
        let (writer, _guard) = batch_writer(sink.clone()).unwrap();
        writer.make_writer().write_all(b"one\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.text() != "one\n" {
            assert!(
                std::time::Instant::now() < deadline,
                "first line never written"
            );
            thread::sleep(Duration::from_millis(1));
        }
        // Long enough for the writer to go idle and park.
        thread::sleep(FLUSH_INTERVAL * 5);
        writer.make_writer().write_all(b"two\n").unwrap();
        while sink.text() != "one\ntwo\n" {
            assert!(
                std::time::Instant::now() < deadline,
                "line after idling never written"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn dropping_the_guard_writes_everything_from_many_threads() {
        let sink = Sink::default();
        let (writer, guard) = batch_writer(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                thread::spawn(move || {
                    for i in 0..1000 {
                        writer
                            .make_writer()
                            .write_all(format!("t{t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = sink.text();
        assert_eq!(text.lines().count(), 4000);
        for t in 0..4 {
            let mine: Vec<_> = text
                .lines()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .collect();
            let want: Vec<_> = (0..1000).map(|i| format!("t{t} line {i}")).collect();
            assert_eq!(mine, want, "thread {t}'s lines out of order or missing");
        }
    }

    #[test]
    fn a_full_buffer_drops_lines_and_says_how_many() {
        /// Blocks every write until the test lets it go.
        struct Stuck(Arc<(Mutex<bool>, std::sync::Condvar)>, Sink);
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let (open, cv) = &*self.0;
                let _open = cv.wait_while(open.lock().unwrap(), |o| !*o).unwrap();
                self.1.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let sink = Sink::default();
        let (writer, guard) = batch_writer(Stuck(gate.clone(), sink.clone())).unwrap();
        // The first line is taken by the writer, which then blocks on it.
        writer.make_writer().write_all(b"first\n").unwrap();
        while !writer.shared.lines().is_empty() {
            thread::sleep(Duration::from_millis(1));
        }
        let line = vec![b'x'; 1023];
        let fits = CAPACITY / 1024;
        for _ in 0..fits + 10 {
            let mut l = line.clone();
            l.push(b'\n');
            writer.make_writer().write_all(&l).unwrap();
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        drop(guard);
        let text = sink.text();
        assert_eq!(text.lines().filter(|l| l.starts_with('x')).count(), fits);
        assert!(
            text.contains("wedge: 10 log lines dropped"),
            "no drop notice in the last {} bytes",
            text.len().min(200)
        );
    }
}
