//! A tokio TCP server made systemd-native with `graced-lifecycle`: each connection gets the first line of
//! `$GREETING_FILE`, reread on reload. `tcp_server [NAME [ADDRESS]]` serves systemd's socket named NAME,
//! else binds ADDRESS; `tcp_server -k graceful|restart|stop|graceful-stop [--wait]` controls it.

use std::{process::ExitCode, time::Duration};

use graced_lifecycle::activation::{self, Leftovers};
use graced_lifecycle::client::{self, Wait};
use graced_lifecycle::listener::{ListenSpec, Listener};
use graced_lifecycle::pidfile::{self, PidFile};
use graced_lifecycle::reload::{self, Generations};
use graced_lifecycle::{Command, ReloadKind, Request, inbox::Inbox, notify::Notifier};
use tokio::io::AsyncWriteExt;

fn main() -> ExitCode {
    run().unwrap_or_else(|error| {
        eprintln!("tcp_server: {error}");
        ExitCode::FAILURE
    })
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    // SAFETY: the first thing the process does: nothing else owns fds 3 and up yet.
    let inherited = unsafe { activation::take_from_env() }?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect(); // [NAME [ADDRESS]] or -k …
    let pid_path = pidfile::default_path("tcp_server");
    if let ["-k", command, rest @ ..] = &args[..] {
        let wait = if rest == ["--wait"] { Wait::UpTo(Duration::from_secs(30)) } else { Wait::No };
        let outcome = client::send(&pid_path, command.parse()?, wait)?;
        println!("{}", outcome.text());
        return Ok(ExitCode::from(outcome.exit_code()));
    }
    let spec =
        ListenSpec::tcp(*args.first().unwrap_or(&"http"), args.get(1).unwrap_or(&"127.0.0.1:8080").parse()?);
    // "Running" means "holds this lock": a second instance stops here, a stale file never blocks.
    let pid_file = PidFile::acquire(&pid_path)?;
    let listener = match inherited.is_empty() {
        true => Listener::bind(&spec)?,
        false => activation::match_listeners(inherited, &[spec], Leftovers::Refuse)?.listeners.remove(0),
    };
    tokio::runtime::Runtime::new()?.block_on(serve(listener, pid_file))
}

/// The "configuration" a reload rereads.
fn greeting() -> Result<String, String> {
    let Some(path) = std::env::var_os("GREETING_FILE") else { return Ok("hello".into()) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the greeting: {e}"))?;
    text.lines().next().filter(|l| !l.trim().is_empty()).map(str::to_owned).ok_or("empty greeting".into())
}

async fn serve(listener: Listener, mut pid_file: PidFile) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let notifier = Notifier::from_env();
    let mut inbox = Inbox::open(pid_file.path())?; // signal handlers before READY=1
    let (config, current) = tokio::sync::watch::channel(format!("{} (generation 1)\n", greeting()?));
    let tcp = listener.into_tokio_tcp()?;
    let accept = tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let (held, line) = (current.clone(), current.borrow().clone()); // `held`: in flight
            tokio::spawn(async move { (stream.write_all(line.as_bytes()).await, drop(held)) });
        }
    });
    let mut generations = Generations::<String>::new();
    notifier.ready("serving generation 1");
    loop {
        let asked = inbox.next().await; // a signal or a control-socket request
        let reply = match asked.request() {
            Request::Status => Ok(format!("generation {} serving", generations.current())),
            Request::AwaitReload => generations.last_reply(),
            Request::ReopenLogs { .. } => Err("this server keeps no log files".into()),
            Request::Command(command) => match ReloadKind::of(command) {
                Some(kind) => {
                    generations.begin(&notifier, kind, "rereading the greeting"); // RELOADING=1
                    let outcome = match greeting() {
                        Ok(text) => {
                            let id = generations.take_next();
                            config.send_replace(format!("{text} (generation {id})\n")); // for new connections
                            generations.succeeded(&notifier, id, "serving") // READY=1
                        }
                        Err(error) => generations.failed(&notifier, kind, error), // READY=1, ERRNO=22
                    };
                    reload::reply(&outcome) // what `-k graceful --wait` prints and exits with
                }
                None if command == Command::Upgrade => Err("this example does not upgrade".into()),
                None => {
                    accept.abort(); // stop accepting: the listener closes
                    notifier.stopping(command.as_str());
                    if command == Command::GracefulStop {
                        pid_file.remove(); // a new instance may start while connections finish
                        config.closed().await; // every connection (each holds a receiver) is done
                    }
                    asked.answer(Ok("stopped".into()));
                    return Ok(ExitCode::SUCCESS);
                }
            },
        };
        asked.answer(reply);
    }
}
