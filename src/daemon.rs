//! Process life cycle: start-up, detaching, the pid file, signals, reload and stop.
//!
//! [`run`] starts the daemon: it binds the listeners (or takes the sockets
//! systemd passed), drops to `user` in single-user mode, detaches unless
//! `-f` was given (fork, setsid, fork, chdir `/`, standard streams to
//! `/dev/null`) and writes `pid_file` under an exclusive lock, then starts
//! the accept threads and waits for signals on a self-pipe. Signal handlers
//! only write the signal number to that pipe.
//!
//! SIGTERM and SIGINT stop accepting, let sessions finish the transaction in
//! flight for up to `shutdown_timeout`, then abort the rest (idle sessions
//! get `421 4.3.2`), log a summary and exit 0. SIGHUP rereads the
//! configuration and the account sources; a bad new configuration is logged
//! and the old one kept, and changes that need a restart are named in the log.
//!
//! [`run_inetd`] serves one session on standard input and output, and
//! [`run_accepted`] one session on a socket systemd accepted.
//!
//! Failures: start-up problems are returned as messages for `main` to print
//! (exit status 1); after start-up, errors are logged.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::account::Accounts;
use crate::config::Config;
use crate::delivery::{Mode, Policy};
use crate::lmtp::{self, Runtime};
use crate::server::{self, Listener, Pool, RuntimeHolder};
use crate::shutdown::Shutdown;
use crate::sys;

/// How long aborted sessions get to close after `shutdown_timeout`.
const ABORT_GRACE: Duration = Duration::from_secs(10);

/// Options from the command line that shape start-up.
pub struct StartOptions {
    /// The configuration file.
    pub config_path: PathBuf,
    /// Stay in the foreground (`-f`).
    pub foreground: bool,
}

/// Builds the runtime for sessions from a configuration.
pub fn build_runtime(config: Config, mode: Mode, shutdown: &Arc<Shutdown>) -> Arc<Runtime> {
    let accounts = Accounts::from_config(&config);
    let policy = Policy::new(&config, mode);
    Arc::new(Runtime {
        config: Arc::new(config),
        accounts: Arc::new(accounts),
        policy,
        shutdown: Arc::clone(shutdown),
    })
}

/// Resolves `user` to (uid, gid, groups), or `None` when it is empty.
pub fn resolve_user(config: &Config) -> Result<Option<(u32, u32, Vec<u32>)>, String> {
    if config.user.is_empty() {
        return Ok(None);
    }
    let entry = sys::getpwnam(&config.user)
        .map_err(|e| format!("cannot look up user {}: {e}", config.user))?
        .ok_or_else(|| {
            format!(
                "user = {}: no such user in the system user database",
                config.user
            )
        })?;
    if entry.uid == 0 {
        return Err(format!(
            "user = {}: this is root; leave user empty for root mode",
            config.user
        ));
    }
    let groups = sys::group_list(&entry.name, entry.gid)
        .map_err(|e| format!("cannot read the groups of {}: {e}", config.user))?;
    Ok(Some((entry.uid, entry.gid, groups)))
}

/// Checks that `spool_directory` is a directory; messages larger than the
/// memory spool could not be received otherwise.
pub fn check_spool_directory(config: &Config) -> Result<(), String> {
    let path = &config.spool_directory;
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "spool_directory {} is not a directory",
            path.display()
        )),
        Err(e) => Err(format!("spool_directory {}: {e}", path.display())),
    }
}

/// Chooses the credential mode and, for `user = name`, drops privileges.
/// Call after binding sockets and before starting threads.
pub fn enter_mode(config: &Config) -> Result<Mode, String> {
    match resolve_user(config)? {
        Some((uid, gid, groups)) => {
            if sys::geteuid() == 0 {
                crate::creds::drop_privileges(uid, gid, &groups).map_err(|e| e.to_string())?;
                log::info!("running as user {} (uid {uid}, gid {gid})", config.user);
            } else if sys::geteuid() != uid {
                return Err(format!(
                    "user = {} needs start as root or as that user, not as uid {}",
                    config.user,
                    sys::geteuid()
                ));
            }
            Ok(Mode::SingleUser { uid })
        }
        None => {
            let mode = Mode::detect();
            if let Mode::SingleUser { uid } = mode {
                log::info!("not started as root: delivering only to mailboxes of uid {uid}");
            }
            Ok(mode)
        }
    }
}

/// A locked pid file, removed when the daemon stops.
pub struct PidFile {
    path: PathBuf,
    file: File,
}

impl PidFile {
    /// Opens and locks `path`; fails when another process holds the lock.
    pub fn lock(path: &Path) -> Result<PidFile, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| format!("cannot open the pid file {}: {e}", path.display()))?;
        if let Err(e) = sys::lock_exclusive(file.as_fd()) {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let pid = text.trim();
            return Err(match e.kind() {
                std::io::ErrorKind::WouldBlock if pid.is_empty() => format!(
                    "zoha is already starting or running (pid file {} locked)",
                    path.display()
                ),
                std::io::ErrorKind::WouldBlock => format!(
                    "zoha is already running (pid {pid}, locked {})",
                    path.display()
                ),
                _ => format!("cannot lock the pid file {}: {e}", path.display()),
            });
        }
        Ok(PidFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Writes the current pid into the file.
    pub fn write_pid(&mut self) -> Result<(), String> {
        let text = format!("{}\n", sys::getpid());
        self.file
            .set_len(0)
            .and_then(|()| std::io::Seek::seek(&mut self.file, std::io::SeekFrom::Start(0)))
            .and_then(|_| self.file.write_all(text.as_bytes()))
            .map_err(|e| format!("cannot write the pid file {}: {e}", self.path.display()))
    }

    /// Removes the file; where that is not allowed (after dropping
    /// privileges), empties it instead.
    pub fn remove(self) {
        if std::fs::remove_file(&self.path).is_err() {
            let _ = self.file.set_len(0);
        }
    }
}

/// The detached daemon's end of a pipe to the process that started it,
/// which waits for the start-up result before it exits.
struct Readiness {
    pipe: Option<File>,
}

impl Readiness {
    /// Tells the starting process that start-up succeeded or why it failed.
    fn report(&mut self, result: Result<(), &str>) {
        if let Some(mut pipe) = self.pipe.take() {
            let text = match result {
                Ok(()) => "ok\n".to_string(),
                Err(e) => format!("{e}\n"),
            };
            let _ = pipe.write_all(text.as_bytes());
        }
    }
}

/// Detaches from the terminal: fork, setsid, fork, chdir `/`, standard
/// streams to `/dev/null`. Only the final child returns. The original
/// process waits until the daemon reports its start-up result, then exits
/// 0, or prints the error and exits 1.
fn detach() -> Result<Readiness, String> {
    let (read_end, write_end) = sys::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    if let sys::Forked::Parent(_) = sys::fork().map_err(|e| format!("fork failed: {e}"))? {
        drop(write_end);
        let mut text = String::new();
        let _ = File::from(read_end).read_to_string(&mut text);
        if text == "ok\n" {
            sys::exit_now(0);
        }
        let text = text.trim();
        let reason = if text.is_empty() {
            "the daemon exited during start-up; see the log"
        } else {
            text
        };
        eprintln!("zoha: {reason}");
        sys::exit_now(1);
    }
    drop(read_end);
    sys::setsid().map_err(|e| format!("setsid failed: {e}"))?;
    if let sys::Forked::Parent(_) = sys::fork().map_err(|e| format!("fork failed: {e}"))? {
        sys::exit_now(0);
    }
    std::env::set_current_dir("/").map_err(|e| format!("chdir / failed: {e}"))?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("cannot open /dev/null: {e}"))?;
    for fd in 0..3 {
        sys::dup2(null.as_raw_fd(), fd)
            .map_err(|e| format!("cannot redirect descriptor {fd}: {e}"))?;
    }
    crate::logging::disable_stderr();
    crate::logging::set_pid(sys::getpid());
    Ok(Readiness {
        pipe: Some(File::from(write_end)),
    })
}

/// Reads sockets passed by systemd (`LISTEN_PID`, `LISTEN_FDS`,
/// `LISTEN_FDNAMES`); `None` when there are none for this process.
pub fn inherited_sockets() -> Option<Vec<(OwnedFd, String)>> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.trim().parse().ok()?;
    if pid != sys::getpid() {
        return None;
    }
    let count: i32 = std::env::var("LISTEN_FDS").ok()?.trim().parse().ok()?;
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    // The variables are for this process only.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let mut sockets = Vec::new();
    for i in 0..count.clamp(0, 1024) {
        let fd: RawFd = 3 + i;
        if let Some(owned) = server::adopt_inherited_fd(fd) {
            let name = names
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| format!("fd{fd}"));
            sockets.push((owned, name));
        }
    }
    Some(sockets)
}

/// Runs the daemon until it is stopped; returns the exit status.
pub fn run(
    options: &StartOptions,
    config: Config,
    inherited: Option<Vec<(OwnedFd, String)>>,
) -> Result<i32, String> {
    // The lock comes first, so a second instance reports that zoha is
    // running instead of failing to bind.
    let mut pid_file = if options.foreground {
        None
    } else {
        Some(PidFile::lock(&config.pid_file)?)
    };
    let mut readiness = None;
    let started = start(
        options,
        config,
        inherited,
        pid_file.as_mut(),
        &mut readiness,
    );
    if let Some(readiness) = readiness.as_mut() {
        readiness.report(started.as_ref().map(drop).map_err(String::as_str));
    }
    let running = match started {
        Ok(running) => running,
        Err(e) => {
            if let Some(pid_file) = pid_file {
                pid_file.remove();
            }
            return Err(e);
        }
    };

    let signal = wait_for_stop(
        &running.signals,
        options,
        running.mode,
        &running.holder,
        &running.pool,
    );
    stop(
        signal,
        &running.pool,
        &running.holder,
        &running.shutdown,
        running.threads,
    );
    if let Some(pid_file) = pid_file {
        pid_file.remove();
    }
    Ok(0)
}

/// A started daemon: what the main thread needs to wait for and stop it.
struct Running {
    mode: Mode,
    signals: OwnedFd,
    /// Kept open for the signal handler.
    _signal_write: OwnedFd,
    shutdown: Arc<Shutdown>,
    pool: Arc<Pool>,
    holder: Arc<RuntimeHolder>,
    threads: Vec<std::thread::JoinHandle<Option<PathBuf>>>,
}

/// Binds (or adopts) the sockets, enters the credential mode, detaches,
/// writes the pid, installs signal handlers and starts accepting.
fn start(
    options: &StartOptions,
    config: Config,
    inherited: Option<Vec<(OwnedFd, String)>>,
    pid_file: Option<&mut PidFile>,
    readiness: &mut Option<Readiness>,
) -> Result<Running, String> {
    check_spool_directory(&config)?;
    // Bind before detaching, so that errors reach the terminal.
    let listeners = match inherited {
        Some(sockets) => sockets
            .into_iter()
            .map(|(fd, name)| {
                Listener::from_inherited(fd).map_err(|e| format!("inherited socket {name}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => server::bind_all(&config)?,
    };
    if listeners.is_empty() {
        return Err("no sockets to listen on".into());
    }
    let mode = enter_mode(&config)?;
    if !options.foreground {
        *readiness = Some(detach()?);
    }
    if let Some(pid_file) = pid_file {
        pid_file.write_pid()?;
    }

    let (signals, signal_write) =
        sys::pipe().map_err(|e| format!("cannot create the signal pipe: {e}"))?;
    sys::forward_signals_to_pipe(
        &[libc::SIGTERM, libc::SIGINT, libc::SIGHUP],
        signal_write.as_raw_fd(),
    )
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let shutdown = Shutdown::new().map_err(|e| format!("cannot create the stop pipes: {e}"))?;
    let started = describe_start(&config, mode);
    let pool = Pool::new(config.workers);
    let holder = Arc::new(RuntimeHolder::new(build_runtime(config, mode, &shutdown)));
    log::info!("{started}");
    let threads = server::start_accepting(
        listeners,
        Arc::clone(&pool),
        Arc::clone(&holder),
        Arc::clone(&shutdown),
    );
    Ok(Running {
        mode,
        signals,
        _signal_write: signal_write,
        shutdown,
        pool,
        holder,
        threads,
    })
}

fn describe_start(config: &Config, mode: Mode) -> String {
    let mode_text = match mode {
        Mode::Root => "root mode, switching to each mailbox owner".to_string(),
        Mode::SingleUser { uid } => format!("single-user mode as uid {uid}"),
    };
    let fsync = if config.fsync {
        ""
    } else {
        "; fsync = no: deliveries are NOT durable (benchmarks only)"
    };
    format!(
        "zoha {} started: {mode_text}, workers {}{fsync}",
        env!("CARGO_PKG_VERSION"),
        config.workers
    )
}

/// Handles SIGHUP until SIGTERM or SIGINT arrives; returns that signal.
fn wait_for_stop(
    signals: &OwnedFd,
    options: &StartOptions,
    mode: Mode,
    holder: &RuntimeHolder,
    pool: &Pool,
) -> i32 {
    // The bytes only wake this loop; the pending set names the signals.
    let mut bytes = [0u8; 256];
    loop {
        match sys::read(signals.as_raw_fd(), &mut bytes) {
            Ok(0) => return libc::SIGTERM,
            Ok(_) => {}
            Err(e) => {
                log::error!("reading the signal pipe failed: {e}; stopping");
                return libc::SIGTERM;
            }
        }
        // A stop wins over reloads, and several SIGHUPs become one reload.
        let pending = sys::take_pending_signals();
        for stop in [libc::SIGTERM, libc::SIGINT] {
            if pending & (1 << stop) != 0 {
                return stop;
            }
        }
        if pending & (1 << libc::SIGHUP) != 0 {
            reload(options, mode, holder, pool);
        }
    }
}

/// Rereads the configuration; keeps the old one when the new one is bad.
fn reload(options: &StartOptions, mode: Mode, holder: &RuntimeHolder, pool: &Pool) {
    let loaded = Config::load(&options.config_path)
        .map_err(|e| e.to_string())
        .and_then(|c| check_spool_directory(&c).map(|()| c));
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            log::error!("reload failed, keeping the running configuration: {e}");
            return;
        }
    };
    let old = holder.current();
    for (name, changed) in [
        ("listen", old.config.listen != config.listen),
        ("user", old.config.user != config.user),
        (
            "unix_socket_mode",
            old.config.unix_socket_mode != config.unix_socket_mode,
        ),
        (
            "unix_socket_user",
            old.config.unix_socket_user != config.unix_socket_user,
        ),
        (
            "unix_socket_group",
            old.config.unix_socket_group != config.unix_socket_group,
        ),
        ("pid_file", old.config.pid_file != config.pid_file),
    ] {
        if changed {
            log::warn!("reload: {name} changed; restart zoha to apply it");
        }
    }
    pool.set_max(config.workers);
    crate::logging::reconfigure(crate::logging::LogSettings {
        socket: config.syslog_socket.clone(),
        facility: config.syslog_facility,
        stderr: options.foreground,
        level: config.log_level,
    });
    holder.replace(build_runtime(config, mode, &old.shutdown));
    log::info!(
        "configuration reloaded from {}; new sessions use it",
        options.config_path.display()
    );
}

/// Stops accepting, lets sessions finish, aborts the rest, and logs a summary.
fn stop(
    signal: i32,
    pool: &Pool,
    holder: &RuntimeHolder,
    shutdown: &Shutdown,
    threads: Vec<std::thread::JoinHandle<Option<PathBuf>>>,
) {
    let name = if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    let timeout = holder.current().config.shutdown_timeout;
    log::info!(
        "{name} received: stopping; {} sessions active, waiting up to {} s",
        pool.busy(),
        timeout.as_secs()
    );
    shutdown.request_stop();
    for thread in threads {
        if let Ok(Some(path)) = thread.join() {
            let _ = std::fs::remove_file(path);
        }
    }
    let mut aborted = 0;
    if !pool.wait_idle(timeout) {
        aborted = pool.busy();
        log::warn!(
            "{aborted} sessions still active after {} s; aborting them",
            timeout.as_secs()
        );
        shutdown.request_abort();
        if !pool.wait_idle(ABORT_GRACE) {
            log::error!("{} sessions did not end; exiting anyway", pool.busy());
        }
    }
    log::info!(
        "stopped: {} sessions served, {aborted} aborted at shutdown",
        pool.sessions_started()
    );
}

/// Opens `/dev/null` on any of descriptors 0, 1 and 2 that is closed, so
/// that files and sockets opened later never land there (and a later
/// redirection of the standard streams cannot replace them).
pub fn ensure_standard_descriptors() {
    use std::os::fd::IntoRawFd;
    for fd in 0..3 {
        if !sys::is_open(fd) {
            // open(2) returns the lowest free descriptor, which is `fd`.
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                let _ = null.into_raw_fd();
            }
        }
    }
}

/// Points standard error at `/dev/null`. Under inetd it is the client's
/// connection, and nothing but LMTP replies may go there (not even the
/// runtime's panic message).
pub fn silence_stderr() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = sys::dup2(null.as_raw_fd(), 2);
    }
}

/// Serves one session on standard input and output (inetd, `-i`).
pub fn run_inetd(config: Config) -> Result<i32, String> {
    let peer = sys::peer_of(0);
    serve_single(config, 0, 1, Box::new(()), peer)
}

/// Serves one session on a connected socket that systemd accepted
/// (`Accept=yes`, descriptor 3).
pub fn run_accepted(config: Config, socket: OwnedFd) -> Result<i32, String> {
    let fd = socket.as_raw_fd();
    let peer = sys::peer_of(fd);
    serve_single(config, fd, fd, server::owned_connection(socket), peer)
}

/// Serves one session in this process; SIGTERM and SIGINT stop it as they
/// stop a daemon session.
fn serve_single(
    config: Config,
    read_fd: RawFd,
    write_fd: RawFd,
    owner: Box<dyn Send>,
    peer: sys::Peer,
) -> Result<i32, String> {
    let mode = enter_mode(&config)?;
    let shutdown = Shutdown::new().map_err(|e| format!("cannot create the stop pipes: {e}"))?;
    watch_stop_signals(&shutdown, config.shutdown_timeout)?;
    let runtime = build_runtime(config, mode, &shutdown);
    lmtp::serve(read_fd, write_fd, owner, peer, runtime);
    Ok(0)
}

/// Starts a thread that turns SIGTERM or SIGINT into a stop request, and
/// into an abort request `timeout` later.
fn watch_stop_signals(shutdown: &Arc<Shutdown>, timeout: Duration) -> Result<(), String> {
    let (signal_read, signal_write) =
        sys::pipe().map_err(|e| format!("cannot create the signal pipe: {e}"))?;
    sys::forward_signals_to_pipe(&[libc::SIGTERM, libc::SIGINT], signal_write.as_raw_fd())
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let shutdown = Arc::clone(shutdown);
    std::thread::Builder::new()
        .name("zoha-signals".into())
        .spawn(move || {
            // The write end must stay open for as long as the handler may use it.
            let _keep = signal_write;
            let mut byte = [0u8; 1];
            if matches!(sys::read(signal_read.as_raw_fd(), &mut byte), Ok(1)) {
                log::info!("signal {} received: stopping the session", byte[0]);
                shutdown.request_stop();
                std::thread::sleep(timeout);
                shutdown.request_abort();
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}
