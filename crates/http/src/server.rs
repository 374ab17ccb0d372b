//! The HTTP server: accept loops over listeners, the current generation, and the controls the lifecycle uses.
//!
//! The server knows nothing of signals or systemd. The lifecycle drives it with
//! plain calls: [`Server::install`] (a reload), [`Server::abort_connections`] (a hard
//! stop or restart), [`Server::begin_drain`] and [`Server::wait_connections`] (a
//! graceful stop). Listeners are owned by the caller, never by a generation; the
//! server only runs accept loops on duplicates of them.

use std::collections::HashMap;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::connection;
use crate::generation::{Counters, Generation};
use crate::http2;
use crate::listener::AnyListener;
use crate::shared::Shared;
use crate::status;
use crate::status::report::Report;
use crate::tls;

/// A running accept loop: how to stop it, and its task.
struct AcceptLoop {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl AcceptLoop {
    /// Tells the loop to stop; its task, which may still hand over one connection.
    fn stop(self) -> JoinHandle<()> {
        self.stop.cancel();
        self.task
    }
}

/// A point-in-time summary for STATUS= and the control socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub generation: u64,
    pub connections: usize,
    pub requests: u64,
    pub bytes: u64,
    pub reloads: u64,
    pub failed_reloads: u64,
    /// Old generations still finishing requests: (id, requests in flight).
    pub finishing: Vec<(u64, usize)>,
    /// TLS connections that ended before their handshake did (garbage, broken hellos, failures).
    pub tls_failed_handshakes: u64,
    /// TLS handshakes cut at `handshake_timeout`.
    pub tls_handshake_timeouts: u64,
    /// Plaintext HTTP requests answered 400 on a TLS port.
    pub tls_plaintext_requests: u64,
    /// HTTP/2 connections open now (counted in `connections` too).
    pub h2_connections: u64,
    /// HTTP/2 streams open now.
    pub h2_streams: u64,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "generation {}; {} connections", self.generation, self.connections)?;
        if self.h2_connections > 0 {
            write!(f, " ({} HTTP/2, {} streams)", self.h2_connections, self.h2_streams)?;
        }
        write!(f, "; {} requests served", self.requests)?;
        for (id, n) in &self.finishing {
            write!(f, "; G{id} finishing {n}")?;
        }
        // Shown once something went wrong on a TLS port: a port scan or a broken client is
        // visible in `systemctl status` without reading the journal.
        if self.tls_failed_handshakes + self.tls_handshake_timeouts + self.tls_plaintext_requests > 0 {
            write!(
                f,
                "; TLS: {} failed handshakes, {} timed out, {} plaintext requests",
                self.tls_failed_handshakes, self.tls_handshake_timeouts, self.tls_plaintext_requests
            )?;
        }
        Ok(())
    }
}

/// The running HTTP server.
pub struct Server {
    shared: Arc<Shared>,
    accept_loops: HashMap<String, AcceptLoop>,
    /// Accept loops told to stop that may not have returned yet: until they have, one
    /// of them may still hand over a connection it has just accepted.
    stopping: Vec<JoinHandle<()>>,
    connection_limit: Arc<Semaphore>,
    limit: usize,
}

impl Server {
    /// A server that will serve `generation` once listeners are added.
    pub fn new(generation: Generation) -> Server {
        let limit = generation.config.limits.max_connections;
        Server {
            shared: Arc::new(Shared::new(generation)),
            accept_loops: HashMap::new(),
            stopping: Vec::new(),
            connection_limit: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    pub fn current(&self) -> Arc<Generation> {
        self.shared.current()
    }

    /// Every generation still alive (the current one, and older ones finishing requests), oldest first.
    pub fn live_generations(&self) -> Vec<Arc<Generation>> {
        self.shared.registry.live()
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Makes `generation` the one every new request takes. Requests in flight keep theirs.
    pub fn install(&mut self, generation: Generation) {
        let limit = generation.config.limits.max_connections;
        if limit > self.limit {
            self.connection_limit.add_permits(limit - self.limit);
        } else if limit < self.limit {
            self.connection_limit.forget_permits(self.limit - limit);
        }
        self.limit = limit;
        self.shared.install(generation);
    }

    /// Starts accepting on the listening socket `socket`, called `name` (a duplicate of its
    /// fd; the caller keeps the original). Whether a connection starts with a TLS handshake
    /// is decided when it is accepted, by the listener called `name` in the generation
    /// current then (`tls = true`), whose `ServerConfig` the handshake takes — so a reload
    /// may start the loop before it installs the generation that adds the listener. When
    /// the current generation says `tls` for `name` but has no `ServerConfig`, this fails
    /// (the supervisor always installs one with a TLS listener).
    pub fn start_accepting(&mut self, name: &str, socket: BorrowedFd<'_>) -> io::Result<()> {
        let generation = self.current();
        let tls = generation.config.listeners.iter().any(|l| l.name == name && l.tls);
        if tls && generation.tls.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "listener {name} has tls = true but generation {} has no TLS configuration                      (certificates): not accepting on it",
                    generation.id
                ),
            ));
        }
        drop(generation);
        let tokio_listener = AnyListener::duplicate(socket)?;
        // Accepting again after a stop's abort: new connections must not inherit it.
        self.shared.resume();
        let stop = CancellationToken::new();
        let shared = self.shared.clone();
        let limit = self.connection_limit.clone();
        let task = tokio::spawn(accept_loop(tokio_listener, name.to_owned(), shared, limit, stop.clone()));
        if let Some(old) = self.accept_loops.insert(name.to_owned(), AcceptLoop { stop, task }) {
            self.stopping.push(old.stop());
        }
        Ok(())
    }

    /// Stops the accept loop of the listener called `name`.
    pub fn stop_accepting(&mut self, name: &str) {
        if let Some(accept_loop) = self.accept_loops.remove(name) {
            self.stopping.push(accept_loop.stop());
        }
    }

    /// Stops every accept loop. A loop that had just accepted a connection still hands
    /// it over: [`open_connections`](Self::open_connections) counts such loops until they
    /// have returned, so a drain never ends while a connection may still appear.
    pub fn stop_accepting_all(&mut self) {
        for (_, accept_loop) in self.accept_loops.drain() {
            self.stopping.push(accept_loop.stop());
        }
    }

    /// Aborts the requests in flight now. While the server still accepts (a hard
    /// restart) that is all it does: a keep-alive connection between requests stays
    /// open and its next request takes the new generation, so a restart fails no request
    /// that had not started; connections accepted afterwards are unaffected. Once
    /// accepting stopped (a stop, or the end of a graceful stop), every open connection
    /// is closed, and so is any a stopped accept loop still hands over.
    pub fn abort_connections(&self) {
        if self.accept_loops.is_empty() {
            self.shared.stop_all();
        } else {
            self.shared.restart();
        }
    }

    /// Begins a graceful stop: responses from now on say `Connection: close`, idle
    /// keep-alive connections are closed once the peek check allows. Call
    /// [`stop_accepting_all`](Self::stop_accepting_all) first.
    pub fn begin_drain(&self) {
        self.shared.drain();
    }

    /// Waits until every stopped accept loop has returned and every connection has
    /// closed, or `timeout`; true if they all did.
    pub async fn wait_connections(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        for task in self.stopping.drain(..) {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                return false;
            }
        }
        self.shared.connections.close();
        let done = tokio::time::timeout_at(deadline, self.shared.connections.wait()).await.is_ok();
        self.shared.connections.reopen();
        done
    }

    /// Open connections, plus stopped accept loops that have not returned yet (each may
    /// still hand over one connection).
    pub fn open_connections(&mut self) -> usize {
        self.stopping.retain(|task| !task.is_finished());
        self.shared.connections.len() + self.stopping.len()
    }

    /// Resets the counters (a hard restart does, as in Apache).
    pub fn reset_counters(&self) {
        self.shared.counters.reset();
    }

    /// What the status endpoint shows besides the server's own numbers (the last failed
    /// reload, the certificates): the caller sets it after each reload.
    pub fn set_report(&self, report: Report) {
        *self.shared.report.lock().unwrap_or_else(|e| e.into_inner()) = report;
    }

    pub fn status(&self) -> Status {
        let counters = &self.shared.counters;
        let generation = self.current().id;
        let totals = counters.tally.totals();
        Status {
            generation,
            connections: self.shared.connections.len(),
            requests: totals.requests(),
            bytes: totals.bytes,
            reloads: counters.reloads.load(Ordering::Relaxed),
            failed_reloads: counters.failed_reloads.load(Ordering::Relaxed),
            finishing: self.shared.registry.finishing(generation),
            tls_failed_handshakes: counters.tls_failed_handshakes.load(Ordering::Relaxed),
            tls_handshake_timeouts: counters.tls_handshake_timeouts.load(Ordering::Relaxed),
            tls_plaintext_requests: counters.tls_plaintext_requests.load(Ordering::Relaxed),
            h2_connections: self.shared.h2_connections.load(Ordering::Relaxed),
            h2_streams: self.shared.h2_streams.load(Ordering::Relaxed),
        }
    }
}

async fn accept_loop(
    listener: AnyListener,
    name: String,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let mut last_warning: Option<tokio::time::Instant> = None;
    // Whether the listener is TLS, h2c, the status endpoint's, as the generation with this id says.
    let mut kind_in: (u64, bool, bool, bool) = (u64::MAX, false, false, false);
    loop {
        // At the connection limit new connections wait in the kernel's backlog.
        // `biased`: once told to stop, never accept again, even with connections queued.
        let permit = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            permit = limit.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                let (tls, h2c, status) = {
                    let generation = shared.current();
                    if generation.id != kind_in.0 {
                        let listener = generation.config.listeners.iter().find(|l| l.name == name);
                        kind_in = (
                            generation.id,
                            listener.is_some_and(|l| l.tls),
                            listener.is_some_and(|l| l.h2c),
                            listener.is_some_and(|l| l.status),
                        );
                    }
                    (kind_in.1, kind_in.2, kind_in.3)
                };
                // Subscribed before the task first runs, so an abort right now reaches it.
                let orders = shared.subscribe();
                let conn_shared = shared.clone();
                if status {
                    shared.connections.spawn(async move {
                        status::serve(stream, conn_shared, orders).await;
                        drop(permit);
                    });
                } else if tls {
                    shared.connections.spawn(async move {
                        tls::serve(stream, remote, conn_shared, orders).await;
                        drop(permit);
                    });
                } else if h2c {
                    shared.connections.spawn(async move {
                        http2::serve_h2c_or_http1(stream, remote, conn_shared, orders).await;
                        drop(permit);
                    });
                } else {
                    shared.connections.spawn(async move {
                        connection::serve(stream, remote, conn_shared, orders).await;
                        drop(permit);
                    });
                }
            }
            Err(err) if is_per_connection(&err) => {}
            Err(err) => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: back off instead of spinning.
                let now = tokio::time::Instant::now();
                if last_warning.is_none_or(|t| now.duration_since(t) > Duration::from_secs(10)) {
                    tracing::warn!(listener = %name, error = %err, "accept failed; pausing accepts for 100ms");
                    last_warning = Some(now);
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    }
}

/// Errors that concern one connection only (the client gave up, or the network did).
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::ECONNRESET
                | libc::EPROTO
                | libc::EPERM
                | libc::ETIMEDOUT
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
        )
    )
}

#[cfg(test)]
mod tests {
    use super::Status;

    #[test]
    fn the_status_line_shows_tls_trouble_once_there_is_some() {
        let mut status = Status { generation: 3, connections: 2, requests: 10, ..Status::default() };
        assert_eq!(status.to_string(), "generation 3; 2 connections; 10 requests served");
        status.tls_plaintext_requests = 1;
        status.tls_handshake_timeouts = 4;
        assert_eq!(
            status.to_string(),
            "generation 3; 2 connections; 10 requests served; TLS: 0 failed handshakes, 4 timed out, 1 plaintext requests"
        );
    }
}
