//! Listeners and the worker pool: accepts connections and runs each session on a worker thread.
//!
//! Each listener (TCP, IPv4 or IPv6, or a UNIX stream socket) gets one
//! thread with a blocking accept loop. Accepted connections go to a bounded
//! [`Pool`]: at most `workers` sessions run at once, each on its own thread;
//! threads are started on demand and reused. A connection beyond the limit
//! gets `421 4.3.2` at once and is closed, so it never waits unanswered in
//! the backlog. A worker thread whose credentials could not be restored is
//! retired instead of reused.
//!
//! Exports [`Listener`], [`bind_all`], [`Pool`], [`RuntimeHolder`] and
//! [`start_accepting`].
//!
//! Failures: binding errors name the address and the OS error; accept
//! errors are logged and retried after a pause (for `EMFILE` and the like).

use std::collections::VecDeque;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{Config, ListenAddr};
use crate::lmtp::{self, Runtime};
use crate::shutdown::Shutdown;
use crate::status::Status;
use crate::sys;

/// Listen backlog for every socket.
const BACKLOG: i32 = 128;
/// Pause after an accept error such as `EMFILE`, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(200);
/// How long a probe of an existing socket file may wait at start-up.
const STALE_SOCKET_PROBE: Duration = Duration::from_secs(2);
/// Minimum time between two log lines about rejected connections.
const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A bound listening socket.
pub enum Listener {
    /// A TCP socket.
    Tcp(TcpListener),
    /// A UNIX stream socket; `path` is removed when Zoha stops, when Zoha created it.
    Unix {
        /// The socket.
        listener: UnixListener,
        /// The socket file Zoha created, if any.
        path: Option<PathBuf>,
    },
}

impl Listener {
    /// Returns the descriptor.
    pub fn raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix { listener, .. } => listener.as_raw_fd(),
        }
    }

    /// Describes the address for logs.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "tcp".into()),
            Listener::Unix { listener, .. } => match listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            {
                Some(p) => format!("unix:{}", p.display()),
                None => "unix".into(),
            },
        }
    }

    /// Wraps an inherited listening socket (systemd socket activation).
    pub fn from_inherited(fd: OwnedFd) -> io::Result<Listener> {
        let family = sys::socket_family(fd.as_raw_fd())?;
        sys::set_cloexec(fd.as_raw_fd())?;
        Ok(match family {
            libc::AF_UNIX => Listener::Unix {
                listener: UnixListener::from(fd),
                path: None,
            },
            libc::AF_INET | libc::AF_INET6 => Listener::Tcp(TcpListener::from(fd)),
            other => {
                return Err(io::Error::other(format!(
                    "inherited socket of unsupported family {other}"
                )))
            }
        })
    }
}

/// Binds every address in `config.listen`.
pub fn bind_all(config: &Config) -> Result<Vec<Listener>, String> {
    config
        .listen
        .iter()
        .map(|addr| bind(addr, config).map_err(|e| format!("cannot listen on {addr}: {e}")))
        .collect()
}

fn bind(addr: &ListenAddr, config: &Config) -> io::Result<Listener> {
    match addr {
        ListenAddr::Tcp(socket_addr) => {
            let fd = sys::tcp_listen(socket_addr, BACKLOG)?;
            Ok(Listener::Tcp(TcpListener::from(fd)))
        }
        ListenAddr::Unix(path) => bind_unix(path, config),
    }
}

/// Binds a UNIX socket, replacing a stale socket file but never a live
/// socket or another kind of file, then applies mode and owner.
fn bind_unix(path: &Path, config: &Config) -> io::Result<Listener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            ));
        }
        // Only a refused connection proves the socket is stale; a full
        // backlog (a timeout) means a live server.
        match sys::unix_connect(path, STALE_SOCKET_PROBE) {
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => std::fs::remove_file(path)?,
            Ok(_) | Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another server is listening there (or the socket cannot be probed)",
                ))
            }
        }
    }
    // The socket gets its mode at creation: a chmod by path afterwards could
    // follow a symbolic link swapped in by whoever can write the directory.
    // This runs at start-up, before other threads exist.
    let previous = sys::umask(!config.unix_socket_mode & 0o777);
    let bound = UnixListener::bind(path);
    sys::umask(previous);
    let listener = bound?;
    let uid = match config.unix_socket_user.as_str() {
        "" => None,
        name => Some(
            sys::getpwnam(name)?
                .ok_or_else(|| io::Error::other(format!("unix_socket_user {name} does not exist")))?
                .uid,
        ),
    };
    let gid =
        match config.unix_socket_group.as_str() {
            "" => None,
            name => Some(sys::getgrnam(name)?.ok_or_else(|| {
                io::Error::other(format!("unix_socket_group {name} does not exist"))
            })?),
        };
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::lchown(path, uid, gid)?;
    }
    Ok(Listener::Unix {
        listener,
        path: Some(path.to_path_buf()),
    })
}

/// The runtime sessions start with; replaced as a whole on reload.
pub struct RuntimeHolder {
    current: RwLock<Arc<Runtime>>,
}

impl RuntimeHolder {
    /// Wraps the first runtime.
    pub fn new(runtime: Arc<Runtime>) -> RuntimeHolder {
        RuntimeHolder {
            current: RwLock::new(runtime),
        }
    }

    /// Returns the runtime in effect now.
    pub fn current(&self) -> Arc<Runtime> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Makes `runtime` the one new sessions use.
    pub fn replace(&self, runtime: Arc<Runtime>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = runtime;
    }
}

type Job = Box<dyn FnOnce() + Send>;

struct PoolState {
    max: usize,
    busy: usize,
    threads: usize,
    queue: VecDeque<Job>,
}

/// A bounded pool of session threads.
pub struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
    idle: Condvar,
    sessions: AtomicU64,
}

impl Pool {
    /// Creates a pool allowing `max` sessions at once.
    pub fn new(max: usize) -> Arc<Pool> {
        Arc::new(Pool {
            state: Mutex::new(PoolState {
                max,
                busy: 0,
                threads: 0,
                queue: VecDeque::new(),
            }),
            work: Condvar::new(),
            idle: Condvar::new(),
            sessions: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the session limit (on reload); running sessions go on.
    pub fn set_max(&self, max: usize) {
        self.lock().max = max;
    }

    /// Returns the number of running sessions.
    pub fn busy(&self) -> usize {
        self.lock().busy
    }

    /// Returns the number of sessions started so far.
    pub fn sessions_started(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Runs `job` on a worker thread, or hands it back when `max` sessions
    /// are already running.
    pub fn try_submit(self: &Arc<Pool>, job: Job) -> Result<(), Job> {
        let mut state = self.lock();
        if state.busy >= state.max {
            return Err(job);
        }
        state.busy += 1;
        state.queue.push_back(job);
        self.sessions.fetch_add(1, Ordering::Relaxed);
        // Every queued job needs a thread that is not running a session.
        if state.threads < state.busy {
            state.threads += 1;
            let pool = Arc::clone(self);
            let spawned = thread::Builder::new()
                .name("zoha-worker".into())
                .spawn(move || pool.work_loop());
            if let Err(e) = spawned {
                state.threads -= 1;
                state.busy -= 1;
                let job = state.queue.pop_back().expect("the job was just queued");
                log::error!("cannot start a worker thread: {e}");
                return Err(job);
            }
        } else {
            self.work.notify_one();
        }
        Ok(())
    }

    fn work_loop(&self) {
        loop {
            let job = {
                let mut state = self.lock();
                loop {
                    if let Some(job) = state.queue.pop_front() {
                        break job;
                    }
                    state = self.work.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            };
            // Sessions catch their own panics; this catch keeps the count right.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            let retire = crate::creds::thread_is_tainted();
            let mut state = self.lock();
            state.busy -= 1;
            if state.busy == 0 {
                self.idle.notify_all();
            }
            if retire {
                state.threads -= 1;
                log::warn!("worker thread retired after a credential failure");
                return;
            }
        }
    }

    /// Waits until no session runs or `timeout` passes; returns true when idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.busy > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .idle
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// A warning for an event that may repeat many times a second (rejected
/// connections, accept failures): logged at most once per
/// [`REJECT_LOG_INTERVAL`], with the number of events since the last line.
#[derive(Default)]
struct RepeatedWarning {
    count: u64,
    last: Option<Instant>,
}

impl RepeatedWarning {
    fn note(&mut self, text: &str) {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= REJECT_LOG_INTERVAL)
        {
            log::warn!("{text} ({} times since the last report)", self.count);
            self.count = 0;
            self.last = Some(now);
        }
    }
}

/// Starts one accept thread per listener; they stop when a stop is requested.
pub fn start_accepting(
    listeners: Vec<Listener>,
    pool: Arc<Pool>,
    holder: Arc<RuntimeHolder>,
    shutdown: Arc<Shutdown>,
) -> Vec<thread::JoinHandle<Option<PathBuf>>> {
    let rejects = Arc::new(Mutex::new(RepeatedWarning::default()));
    listeners
        .into_iter()
        .map(|listener| {
            let pool = Arc::clone(&pool);
            let holder = Arc::clone(&holder);
            let shutdown = Arc::clone(&shutdown);
            let rejects = Arc::clone(&rejects);
            thread::Builder::new()
                .name("zoha-accept".into())
                .spawn(move || accept_loop(listener, &pool, &holder, &shutdown, &rejects))
                .expect("cannot start an accept thread")
        })
        .collect()
}

/// Accepts connections until a stop is requested; returns the socket path
/// to remove, if Zoha created one.
fn accept_loop(
    listener: Listener,
    pool: &Arc<Pool>,
    holder: &RuntimeHolder,
    shutdown: &Arc<Shutdown>,
    rejects: &Mutex<RepeatedWarning>,
) -> Option<PathBuf> {
    let signals = shutdown.signals();
    let mut accept_errors = RepeatedWarning::default();
    log::info!("listening on {}", listener.describe());
    loop {
        let ready = match sys::poll(
            &[
                (listener.raw_fd(), libc::POLLIN),
                (signals.soft, libc::POLLIN),
            ],
            None,
        ) {
            Ok(r) => r,
            Err(e) => {
                log::error!("poll on {} failed: {e}", listener.describe());
                thread::sleep(ACCEPT_ERROR_PAUSE);
                continue;
            }
        };
        if ready[1] != 0 {
            break;
        }
        if ready[0] == 0 {
            continue;
        }
        let accepted = accept(&listener);
        let (owner, fd, peer) = match accepted {
            Ok(Some(conn)) => conn,
            Ok(None) => continue,
            Err(e) => {
                // Out of descriptors, this repeats every pause: log it rarely.
                accept_errors.note(&format!("accept on {} failed: {e}", listener.describe()));
                thread::sleep(ACCEPT_ERROR_PAUSE);
                continue;
            }
        };
        let runtime = holder.current();
        let job_peer = peer.clone();
        let job: Job = Box::new(move || lmtp::serve(fd, fd, owner, job_peer, runtime));
        if let Err(job) = pool.try_submit(job) {
            // The returned job owns the connection: reply before dropping it,
            // or `fd` is already closed and may belong to another file.
            reject_busy(fd, &holder.current());
            drop(job);
            let peer = lmtp::session::PeerInfo::from_peer(&peer).log;
            let max = holder.current().config.workers;
            let text = format!("connection from {peer} rejected: all {max} workers busy");
            rejects
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .note(&text);
        }
    }
    match listener {
        Listener::Unix { path, .. } => path,
        Listener::Tcp(_) => None,
    }
}

type Accepted = (Box<dyn Send>, RawFd, sys::Peer);

/// Accepts one connection; `Ok(None)` for errors that only concern that
/// connection (it vanished before it was accepted).
fn accept(listener: &Listener) -> io::Result<Option<Accepted>> {
    let result = match listener {
        Listener::Tcp(l) => l.accept().map(|(stream, addr)| {
            let _ = stream.set_nodelay(true);
            let fd = stream.as_raw_fd();
            (Box::new(stream) as Box<dyn Send>, fd, sys::Peer::Inet(addr))
        }),
        Listener::Unix { listener, .. } => listener.accept().map(|(stream, _)| {
            let fd = stream.as_raw_fd();
            (Box::new(stream) as Box<dyn Send>, fd, sys::Peer::Unix)
        }),
    };
    match result {
        Ok(accepted) => Ok(Some(accepted)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ECONNABORTED)
                    | Some(libc::EINTR)
                    | Some(libc::EAGAIN)
                    | Some(libc::EPROTO)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Tells a connection beyond the worker limit to come back later, without
/// waiting for it; the connection is closed when its owner is dropped.
fn reject_busy(fd: RawFd, runtime: &Runtime) {
    let reply = Status::ServiceUnavailable.reply(format!(
        "{} Too many connections, try again later",
        runtime.config.hostname
    ));
    let line = format!("{reply}\r\n");
    let _ = sys::write(fd, line.as_bytes());
}

/// Creates the owner of an inherited connection descriptor.
pub fn owned_connection(fd: OwnedFd) -> Box<dyn Send> {
    Box::new(fd)
}

/// Wraps a raw descriptor number that the process inherited.
///
/// The caller must own `fd`: it was passed by inetd or systemd and nothing
/// else in the process uses it.
pub fn adopt_inherited_fd(fd: RawFd) -> Option<OwnedFd> {
    if !sys::is_open(fd) {
        return None;
    }
    Some(sys::adopt_fd(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn pool_limits_concurrent_jobs() {
        let pool = Pool::new(2);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (started_tx, started_rx) = mpsc::channel::<()>();
        for _ in 0..2 {
            let rx = Arc::clone(&release_rx);
            let started = started_tx.clone();
            assert!(pool
                .try_submit(Box::new(move || {
                    started.send(()).unwrap();
                    let _ = rx.lock().unwrap().recv();
                }))
                .is_ok());
        }
        started_rx.recv().unwrap();
        started_rx.recv().unwrap();
        assert!(pool.try_submit(Box::new(|| {})).is_err());
        release_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
        assert!(pool.wait_idle(Duration::from_secs(10)));
        assert!(pool.try_submit(Box::new(|| {})).is_ok());
        assert!(pool.wait_idle(Duration::from_secs(10)));
        assert_eq!(pool.sessions_started(), 3);
    }
}
