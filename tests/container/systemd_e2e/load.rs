//! The client load of the restart scenarios: a stop flag, per-client tallies (HTTPS ones count certificate serials), restart storms with any clients, and their figures.

use super::*;

/// A flag client threads poll; set when dropped, so a failing test stops its clients too.
#[derive(Clone)]
pub(super) struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub(super) fn new() -> StopFlag {
        StopFlag(Arc::new(AtomicBool::new(false)))
    }

    pub(super) fn load(&self, order: Ordering) -> bool {
        self.0.load(order)
    }

    pub(super) fn store(&self, value: bool, order: Ordering) {
        self.0.store(value, order)
    }
}

impl Drop for StopFlag {
    fn drop(&mut self) {
        // Only the test's own copy stops the clients (the threads hold clones).
        if Arc::strong_count(&self.0) > 1 && std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// What one client saw during a restart storm.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) ok: u64,
    pub(super) failures: BTreeMap<String, u64>,
    pub(super) examples: Vec<String>,
    pub(super) connections: u64,
    pub(super) closed_by_header: u64,
    pub(super) closed_between: u64,
    /// HTTPS: how many responses came over a connection served each certificate serial.
    pub(super) serials: BTreeMap<String, u64>,
    /// The longest a request took (kept by clients that time theirs, see [`Tally::record_timed`]).
    pub(super) slowest: Duration,
}

impl Tally {
    pub(super) fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    pub(super) fn record(&mut self, result: Result<http::Response, http::Failure>) {
        match result {
            Ok(r) if r.status == 200 && r.body == b"one\n" => self.ok += 1,
            Ok(r) => self.fail("wrong-response", format!("{} {:?}", r.status, r.text())),
            Err(f) => self.fail(f.kind(), f.to_string()),
        }
    }

    /// As [`Tally::record`], for a request started at `started`: keeps the slowest time.
    pub(super) fn record_timed(&mut self, started: Instant, result: Result<http::Response, http::Failure>) {
        self.slowest = self.slowest.max(started.elapsed());
        self.record(result);
    }

    /// An HTTPS result: as [`Tally::record`], counting the serial each response came with.
    pub(super) fn record_tls(&mut self, result: Result<(http::Response, String), http::Failure>) {
        let result = result.map(|(response, serial)| {
            *self.serials.entry(serial).or_default() += 1;
            response
        });
        self.record(result);
    }

    pub(super) fn fail(&mut self, kind: &str, example: String) {
        *self.failures.entry(kind.to_owned()).or_default() += 1;
        if self.examples.len() < 5 {
            self.examples.push(example);
        }
    }
}

/// Runs `restarts` × `systemctl restart graced.service` while `client` requests
/// continuously; returns the tally and the restart times.
pub(super) fn restart_storm(
    c: &Container,
    keep_alive: bool,
    restarts: usize,
) -> (Tally, Vec<Duration>, Duration) {
    storm(c, HTTP, "graced.service", keep_alive, restarts, &|c: &Container, i| {
        let out = c.systemctl(&["restart", "graced.service"]);
        assert!(out.success(), "restart {i}: {out}");
    })
}

/// Runs `round` `rounds` times on `unit` while a client requests `http://ADDRESS/`
/// continuously (a new connection per request, or keep-alive); every round must start a
/// new process. Returns the client's tally, each round's time and the total.
pub(super) fn storm(
    c: &Container,
    address: &'static str,
    unit: &str,
    keep_alive: bool,
    rounds: usize,
    round: &dyn Fn(&Container, usize),
) -> (Tally, Vec<Duration>, Duration) {
    let client: LoadClient = Box::new(move |stop: StopFlag| {
        let mut tally = Tally::default();
        let mut conn = KeepAlive::new(addr(address));
        while !stop.load(Ordering::SeqCst) {
            if keep_alive {
                tally.record(conn.get("/"));
            } else {
                tally.connections += 1;
                tally.record(http::get(addr(address), "/"));
            }
        }
        if keep_alive {
            tally.connections = conn.connections;
            tally.closed_by_header = conn.closed_by_header;
            tally.closed_between = conn.closed_between;
        }
        tally
    });
    let (mut tallies, times, total) = storm_with(c, unit, rounds, round, vec![client]);
    (tallies.remove(0), times, total)
}

/// A client of a storm: requests until the flag is set, then returns what it saw.
pub(super) type LoadClient = Box<dyn FnOnce(StopFlag) -> Tally + Send>;

/// Runs `round` `rounds` times on `unit` while every one of `clients` runs in the
/// container's network namespace; every round must start a new process. Returns each
/// client's tally (in the order given), each round's time and the total.
pub(super) fn storm_with(
    c: &Container,
    unit: &str,
    rounds: usize,
    round: &dyn Fn(&Container, usize),
    clients: Vec<LoadClient>,
) -> (Vec<Tally>, Vec<Duration>, Duration) {
    let pid = |c: &Container| c.prop(unit, "MainPID");
    let mut times = Vec::new();
    let mut pids = vec![pid(c)];
    let mut total = Duration::ZERO;
    let tallies = during(c, clients, || {
        let t = Instant::now();
        for i in 0..rounds {
            let t = Instant::now();
            round(c, i);
            times.push(t.elapsed());
            pids.push(pid(c));
        }
        total = t.elapsed();
    });
    pids.dedup();
    assert_eq!(pids.len(), rounds + 1, "every round started a new process: {pids:?}");
    (tallies, times, total)
}

/// Runs `body` while every one of `clients` runs in the container's network namespace
/// (from 300 ms before to 300 ms after it); returns each client's tally, in the order given.
pub(super) fn during(c: &Container, clients: Vec<LoadClient>, body: impl FnOnce()) -> Vec<Tally> {
    let stop = StopFlag::new();
    let threads: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let stop = stop.clone();
            c.spawn_in_netns(move || client(stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    body();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// One line of figures for a storm.
pub(super) fn describe(mode: &str, tally: &Tally, times: &[Duration], total: Duration) -> String {
    let max = times.iter().max().copied().unwrap_or_default();
    let avg = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    format!(
        "{mode}: {} requests ok, {} failed {:?}, {} connections; {} rounds in {} (avg {}, max {})",
        tally.ok,
        tally.failed(),
        tally.failures,
        tally.connections,
        times.len(),
        ms(total),
        ms(avg),
        ms(max)
    )
}
