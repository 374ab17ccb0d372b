//! A keep-alive connection parked while idle: hyper's state and buffers taken down, the task
//! waiting with the socket and the meter only for the next request's first byte, and the
//! limits and orders (`keepalive_timeout`, a graceful stop's grace, a stop) holding as while
//! hyper serves it.

use tokio::io::AsyncWriteExt;

use crate::limits::{CLOSE_NOTIFY_WAIT, Watch, instant_at};
use crate::linger;
use crate::meter::{MeteredIo, Transport, now_us};
use crate::shared::{Order, Subscription};

/// How a connection leaves [`park`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unpark {
    /// Bytes arrived: hyper serves it again.
    Serve,
    /// It is over: idle for `keepalive_timeout` (or a graceful stop's grace), the client
    /// left, or a stop aborted it.
    Close,
}

/// Holds an idle connection with no HTTP state until its next request: hyper's connection
/// and buffers (~11 KiB once a request was served) are freed, and the connection costs its
/// socket, its meter and this task, ~1.8 KiB (nginx frees its buffers on idle keep-alive
/// connections for the same reason). The limits hold as while hyper serves it:
/// `keepalive_timeout` from the end of the last response, a graceful stop's grace, a stop.
pub(crate) async fn park<S: Transport>(
    io: &mut MeteredIo<S>,
    watch: &mut Watch,
    orders: &mut Subscription,
) -> Unpark {
    watch.sendfile.release();
    let meter = watch.meter.clone();
    let mut orders_open = true;
    let mut byte = [0u8; 1];
    loop {
        if orders.has_news() {
            match orders.take(false) {
                Order::Abort => return Unpark::Close,
                Order::Drain => watch.drain_started = Some(now_us()),
                Order::Restart | Order::None => {}
            }
        }
        let deadline = watch.limits.idle_deadline(&meter, watch.drain_started);
        let mut waiter = orders.waiter();
        tokio::select! {
            biased;
            changed = waiter.changed(), if orders_open => orders_open = changed.is_ok(),
            peeked = io.get_ref().stream().peek(&mut byte) => {
                // 0: the client closed; an error: it is gone.
                return if matches!(peeked, Ok(n) if n > 0) { Unpark::Serve } else { Unpark::Close };
            }
            () = tokio::time::sleep_until(instant_at(deadline)) => {
                // A request that arrived this very moment is served, not closed on.
                if meter.request_arriving(watch.fd) {
                    return Unpark::Serve;
                }
                break;
            }
        }
    }
    // Idle: closed as hyper closes an idle connection (`close_idle`).
    if S::TLS {
        let _ = tokio::time::timeout(CLOSE_NOTIFY_WAIT, io.shutdown()).await;
    }
    if watch.drain_started.is_some() {
        linger::delivered(io.get_ref().socket(), watch.send_timeout).await;
    }
    Unpark::Close
}
