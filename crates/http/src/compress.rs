//! On-the-fly compression: each variant — a file version in one coding — is compressed once,
//! on tokio's blocking pool, and kept in a process-wide cache bounded in bytes
//! ([`CACHE_BYTES`]); a request for a variant being compressed waits for that one
//! compression instead of starting its own (no thundering herd). nginx's `gzip on`
//! compresses every response anew; this is Caddy's and static-web-server's missing piece.
//!
//! At most [`MAX_RUNNING`] compressions run at once: each holds a file and its compressed copy
//! in memory, and a flood of requests for many different large files must not hold hundreds.
//! A request that would start one more gets the file as it is ([`Variant::Busy`]) — a valid
//! answer with its own ETag — and a later request makes the variant.
//!
//! A variant is keyed by the identity representation's strong `ETag`, which names the file
//! version (inode, size, mtime to the nanosecond), and the coding. The bytes read are checked
//! against that version after reading (size and mtime again), so a file rewritten meanwhile
//! never leaves old bytes under a new tag or new bytes under the old one.
//!
//! Levels: gzip 6 (nginx's usual `gzip_comp_level`), brotli 9, zstd 9: each is a moderate
//! level that stays fast for the largest file allowed, and a zstd window (4 MiB) that every
//! browser decodes (they cap it at 8 MiB).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::watch;

use crate::encoding::Encoding;

/// Bytes of compressed variants the process keeps at most. A variant bigger than an eighth of
/// this is sent but not kept (the configuration caps `max_size` well below).
pub(crate) const CACHE_BYTES: usize = 64 << 20;
/// Variants kept at most.
const CACHE_ENTRIES: usize = 8192;

/// Compressions running at most at once.
pub(crate) const MAX_RUNNING: usize = 4;

const GZIP_LEVEL: u32 = 6;
const BROTLI_QUALITY: i32 = 9;
const BROTLI_WINDOW: i32 = 22;
const ZSTD_LEVEL: i32 = 9;

/// Which variant: the identity representation's strong ETag and the coding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) etag: HeaderValue,
    pub(crate) encoding: Encoding,
}

/// Where the identity bytes come from.
pub(crate) enum Source {
    Bytes(Bytes),
    /// An open file that must still be `len` bytes, last modified at `modified`, once read.
    File {
        file: Arc<File>,
        len: u64,
        modified: Option<SystemTime>,
    },
    /// The bytes could not be had (no descriptor to spare): the compression fails.
    Failed(io::Error),
}

/// A compressed body still being made: resolves to its bytes.
pub(crate) type Pending = Pin<Box<dyn Future<Output = io::Result<Bytes>> + Send>>;

/// A variant, ready or on its way; or none, because [`MAX_RUNNING`] compressions are running.
pub(crate) enum Variant {
    Ready(Bytes),
    Pending(Pending),
    Busy,
}

/// What a waiter receives: the bytes, or why there are none (the same for every waiter).
type Outcome = Option<Result<Bytes, Arc<str>>>;

enum Slot {
    Ready(Bytes),
    Pending(watch::Receiver<Outcome>),
}

#[derive(Default)]
struct Cache {
    slots: HashMap<Key, Slot>,
    /// Compressions running now.
    running: usize,
    /// Ready keys, oldest first.
    order: VecDeque<Key>,
    bytes: usize,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

fn cache() -> MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The variant if it is ready (HEAD requests never start a compression).
pub(crate) fn peek(key: &Key) -> Option<Bytes> {
    match cache().slots.get(key) {
        Some(Slot::Ready(bytes)) => Some(bytes.clone()),
        _ => None,
    }
}

/// The variant `key`: from the cache, or by waiting for a compression already under way, or
/// by starting one on the blocking pool (must run inside the tokio runtime).
pub(crate) fn get(key: &Key, source: impl FnOnce() -> Source) -> Variant {
    let mut cache = cache();
    match cache.slots.get(key) {
        Some(Slot::Ready(bytes)) => return Variant::Ready(bytes.clone()),
        Some(Slot::Pending(rx)) => return Variant::Pending(wait(rx.clone())),
        None => {}
    }
    if cache.running >= MAX_RUNNING {
        return Variant::Busy;
    }
    cache.running += 1;
    let (tx, rx) = watch::channel(None);
    cache.slots.insert(key.clone(), Slot::Pending(rx.clone()));
    drop(cache);
    let finish = Finish { key: Some(key.clone()), tx };
    let (source, encoding) = (source(), key.encoding);
    tokio::task::spawn_blocking(move || {
        let result = read(source).and_then(|data| compress(&data, encoding));
        finish.done(result);
    });
    Variant::Pending(wait(rx))
}

fn wait(mut rx: watch::Receiver<Outcome>) -> Pending {
    Box::pin(async move {
        let outcome =
            rx.wait_for(Option::is_some).await.map_err(|_| io::Error::other("compression abandoned"))?;
        match outcome.clone() {
            Some(Ok(bytes)) => Ok(bytes),
            Some(Err(why)) => Err(io::Error::other(why.to_string())),
            None => Err(io::Error::other("compression abandoned")),
        }
    })
}

/// Ends a compression: the result goes into the cache (if it succeeded) and to every waiter;
/// dropped without `done` (a panic), the pending slot is removed so a later request retries.
struct Finish {
    key: Option<Key>,
    tx: watch::Sender<Outcome>,
}

impl Finish {
    fn done(mut self, result: io::Result<Bytes>) {
        let key = self.key.take().expect("finished once");
        let mut cache = cache();
        cache.slots.remove(&key);
        cache.running -= 1;
        match &result {
            Ok(bytes) => cache.insert(key, bytes.clone()),
            Err(err) => tracing::warn!(error = %err, "compressing a response failed"),
        }
        drop(cache);
        self.tx.send_replace(Some(result.map_err(|e| Arc::from(e.to_string()))));
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut cache = cache();
            cache.slots.remove(&key);
            cache.running -= 1;
            drop(cache);
            self.tx.send_replace(Some(Err(Arc::from("compression failed"))));
        }
    }
}

impl Cache {
    fn insert(&mut self, key: Key, bytes: Bytes) {
        let size = bytes.len();
        if size > CACHE_BYTES / 8 {
            return;
        }
        while !self.order.is_empty() && (self.bytes + size > CACHE_BYTES || self.order.len() >= CACHE_ENTRIES)
        {
            let oldest = self.order.pop_front().expect("not empty");
            if let Some(Slot::Ready(old)) = self.slots.remove(&oldest) {
                self.bytes -= old.len();
            }
        }
        self.bytes += size;
        self.order.push_back(key.clone());
        self.slots.insert(key, Slot::Ready(bytes));
    }
}

/// The identity bytes, checked to still be the version they were looked up as.
fn read(source: Source) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    match source {
        Source::Bytes(bytes) => Ok(bytes),
        Source::Failed(err) => Err(err),
        Source::File { file, len, modified } => {
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, 0)?;
            let meta = file.metadata()?;
            if meta.len() != len || meta.modified().ok() != modified {
                return Err(io::Error::other("the file changed while it was read for compression"));
            }
            Ok(Bytes::from(buf))
        }
    }
}

/// `data` compressed with `encoding`.
pub(crate) fn compress(data: &[u8], encoding: Encoding) -> io::Result<Bytes> {
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    match encoding {
        Encoding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
            encoder.write_all(data)?;
            out = encoder.finish()?;
        }
        Encoding::Br => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: BROTLI_QUALITY,
                lgwin: BROTLI_WINDOW,
                size_hint: data.len(),
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
        }
        Encoding::Zstd => out = zstd::bulk::compress(data, ZSTD_LEVEL)?,
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn text() -> Vec<u8> {
        (0..20_000).flat_map(|i| format!("<p>line {i} of some html</p>\n").into_bytes()).collect()
    }

    #[test]
    fn every_coding_round_trips() {
        let data = text();
        let gz = compress(&data, Encoding::Gzip).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let br = compress(&data, Encoding::Br).unwrap();
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let zst = compress(&data, Encoding::Zstd).unwrap();
        assert_eq!(zstd::stream::decode_all(&zst[..]).unwrap(), data);
        assert!(gz.len() < data.len() / 4 && br.len() < gz.len() && zst.len() < data.len() / 4);
    }

    #[test]
    fn the_cache_is_bounded_in_bytes_oldest_out_first() {
        let mut cache = Cache::default();
        let key = |n: u32| Key { etag: HeaderValue::from(n), encoding: Encoding::Br };
        let chunk = CACHE_BYTES / 8;
        for n in 0..20 {
            cache.insert(key(n), Bytes::from(vec![0u8; chunk]));
            assert!(cache.bytes <= CACHE_BYTES, "{} bytes kept", cache.bytes);
        }
        assert_eq!(cache.bytes, 8 * chunk);
        assert!(!cache.slots.contains_key(&key(11)), "the oldest went first");
        assert!(cache.slots.contains_key(&key(12)) && cache.slots.contains_key(&key(19)));
        cache.insert(key(99), Bytes::from(vec![0u8; chunk + 1]));
        assert!(!cache.slots.contains_key(&key(99)), "a variant over an eighth is sent, not kept");
    }

    /// The tests that use the process-wide cache run one at a time.
    static GLOBAL: Mutex<()> = Mutex::new(());

    // Held across awaits on purpose: it only keeps the other (synchronous) test out.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_compression() {
        let _one = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
        let key = Key { etag: HeaderValue::from_static("\"test-shared\""), encoding: Encoding::Gzip };
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let data = Bytes::from(text());
        let mut waiting = Vec::new();
        for _ in 0..20 {
            let calls = calls.clone();
            let data = data.clone();
            match get(&key, move || {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Source::Bytes(data)
            }) {
                Variant::Pending(p) => waiting.push(p),
                Variant::Ready(_) => {}
                Variant::Busy => panic!("nothing else is compressing"),
            }
        }
        for p in waiting {
            assert!(p.await.unwrap().len() < data.len() / 4);
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "compressed once");
        assert!(peek(&key).is_some(), "kept");
        assert!(matches!(get(&key, || unreachable!()), Variant::Ready(_)));
    }

    #[test]
    fn no_more_than_max_running_compressions_at_once() {
        let _one = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
        cache().running += MAX_RUNNING;
        let key = Key { etag: HeaderValue::from_static("\"test-busy\""), encoding: Encoding::Zstd };
        let busy = matches!(get(&key, || unreachable!("not read when busy")), Variant::Busy);
        cache().running -= MAX_RUNNING;
        assert!(busy, "a compression past the limit is not started");
        assert!(peek(&key).is_none() && !cache().slots.contains_key(&key));
    }
}
