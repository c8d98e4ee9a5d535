//! Logging: sends `log` records to syslog and, in the foreground, to standard error.
//!
//! Syslog lines use ident `zoha`, the process id, the facility from
//! `syslog_facility` and the socket from `syslog_socket` (`/dev/log` by
//! default), in the RFC 3164 format `<PRI>Mmm dd hh:mm:ss zoha[PID]: text`
//! with local time and the day padded with a space. Levels map to
//! severities: error to err, warn to warning, info to info, debug and
//! trace to debug. When no syslog daemon listens, records are dropped
//! quietly and a reconnect is tried at most every 10 seconds, so logging
//! never blocks or fails delivery. Standard error gets the same text with a
//! timestamp and the level.
//!
//! Exports [`init`], [`reconfigure`] and [`set_pid`].
//!
//! Failures: none reach the caller; a logger can be installed only once,
//! and [`init`] reports that as an error string.

use std::io::BufWriter;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use syslog::{Facility, LoggerBackend, Severity};

/// How often a lost syslog connection is retried.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(10);

/// Formats RFC 3164 lines. The `syslog` crate's own formatter writes UTC and
/// pads the day with a zero, which syslog daemons do not expect.
#[derive(Clone)]
struct Rfc3164 {
    facility: Facility,
    pid: u32,
}

impl<T: std::fmt::Display> syslog::LogFormat<T> for Rfc3164 {
    fn format<W: Write>(&self, w: &mut W, severity: Severity, message: T) -> syslog::Result<()> {
        let priority = self.facility as u8 | severity as u8;
        // One write call: the datagram backend sends one datagram per call.
        write!(
            w,
            "<{priority}>{} zoha[{}]: {message}",
            crate::clock::syslog_stamp(crate::clock::now_secs()),
            self.pid
        )
        .map_err(syslog::Error::Write)
    }
}

struct SyslogState {
    logger: Option<syslog::Logger<LoggerBackend, Rfc3164>>,
    last_attempt: Option<Instant>,
    socket: PathBuf,
    facility: Facility,
    pid: u32,
    /// Lines lost since the last one syslog accepted.
    dropped: u64,
}

struct ZohaLogger {
    syslog: Mutex<SyslogState>,
    stderr: AtomicBool,
}

static LOGGER: OnceLock<ZohaLogger> = OnceLock::new();

/// Settings for [`init`] and [`reconfigure`].
pub struct LogSettings {
    /// The syslog socket path.
    pub socket: PathBuf,
    /// The syslog facility.
    pub facility: Facility,
    /// Also write to standard error.
    pub stderr: bool,
    /// The maximum (most verbose) level logged.
    pub level: log::LevelFilter,
}

/// Installs the logger. Call once, early in `main`.
pub fn init(settings: LogSettings) -> Result<(), String> {
    let logger = ZohaLogger {
        syslog: Mutex::new(SyslogState {
            logger: None,
            last_attempt: None,
            socket: settings.socket,
            facility: settings.facility,
            pid: crate::sys::getpid(),
            dropped: 0,
        }),
        stderr: AtomicBool::new(settings.stderr),
    };
    LOGGER
        .set(logger)
        .map_err(|_| "the logger is already installed".to_string())?;
    let installed: &'static ZohaLogger = LOGGER.get().ok_or("the logger is missing")?;
    log::set_logger(installed).map_err(|e| e.to_string())?;
    log::set_max_level(settings.level);
    Ok(())
}

/// Applies new settings (after a reload); the next record reconnects.
pub fn reconfigure(settings: LogSettings) {
    if let Some(logger) = LOGGER.get() {
        let mut state = logger.syslog.lock().unwrap_or_else(|p| p.into_inner());
        state.socket = settings.socket;
        state.facility = settings.facility;
        state.logger = None;
        state.last_attempt = None;
        logger.stderr.store(settings.stderr, Ordering::Relaxed);
        log::set_max_level(settings.level);
    }
}

/// Updates the pid in syslog lines (after the daemon forks).
pub fn set_pid(pid: u32) {
    if let Some(logger) = LOGGER.get() {
        let mut state = logger.syslog.lock().unwrap_or_else(|p| p.into_inner());
        state.pid = pid;
        state.logger = None;
        state.last_attempt = None;
    }
}

/// Reports whether log lines also go to standard error.
pub fn stderr_enabled() -> bool {
    LOGGER
        .get()
        .is_some_and(|l| l.stderr.load(Ordering::Relaxed))
}

/// Stops writing to standard error (after detaching from the terminal).
pub fn disable_stderr() {
    if let Some(logger) = LOGGER.get() {
        logger.stderr.store(false, Ordering::Relaxed);
    }
}

impl SyslogState {
    fn connect(&mut self) {
        let now = Instant::now();
        if self
            .last_attempt
            .is_some_and(|t| now.duration_since(t) < RECONNECT_INTERVAL)
        {
            return;
        }
        self.last_attempt = Some(now);
        let formatter = Rfc3164 {
            facility: self.facility,
            pid: self.pid,
        };
        self.logger = connect_nonblocking(&self.socket)
            .ok()
            .map(|backend| syslog::Logger { formatter, backend });
    }

    fn send(&mut self, level: log::Level, message: &str) {
        if self.logger.is_none() {
            self.connect();
        }
        let Some(logger) = self.logger.as_mut() else {
            self.dropped += 1;
            return;
        };
        if self.dropped > 0 {
            let note = format!(
                "{} log lines were dropped: syslog did not accept them",
                self.dropped
            );
            if logger.warning(note.as_str()).is_ok() {
                self.dropped = 0;
            }
        }
        let result = match level {
            log::Level::Error => logger.err(message),
            log::Level::Warn => logger.warning(message),
            log::Level::Info => logger.info(message),
            log::Level::Debug | log::Level::Trace => logger.debug(message),
        };
        match result {
            Ok(()) => {}
            // A full datagram queue: count the line and go on.
            Err(syslog::Error::Write(e) | syslog::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && matches!(logger.backend, LoggerBackend::Unix(_)) =>
            {
                self.dropped += 1;
            }
            // The daemon went away, or a stream lost its framing: reconnect later.
            Err(_) => {
                self.dropped += 1;
                self.logger = None;
            }
        }
    }
}

/// Connects to the syslog socket without ever waiting, because a syslog
/// daemon that stops reading must not stall the sessions that log: a
/// datagram socket, or for a stream socket (`EPROTOTYPE`) a non-blocking
/// connect that fails on a full backlog. Both sockets stay non-blocking,
/// so lines are dropped (and counted) instead of waited on.
fn connect_nonblocking(path: &Path) -> std::io::Result<LoggerBackend> {
    let datagram = UnixDatagram::unbound()?;
    match datagram.connect(path) {
        Ok(()) => {
            datagram.set_nonblocking(true)?;
            Ok(LoggerBackend::Unix(datagram))
        }
        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
            let stream = crate::sys::unix_connect(path, Duration::ZERO)?;
            Ok(LoggerBackend::UnixStream(BufWriter::new(stream)))
        }
        Err(e) => Err(e),
    }
}

/// Replaces control characters (line ends included, so that one record is
/// one line) with `\u{NNNN}`: values from account sources or files can
/// carry any bytes.
fn escape_controls(message: &str) -> String {
    if !message.chars().any(char::is_control) {
        return message.to_string();
    }
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:04X}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Longest line written to standard error; a pipe takes a write of at most
/// PIPE_BUF (4096) bytes whole once poll reports room.
const MAX_STDERR_LINE: usize = 4000;

/// Writes `line` to standard error unless that would wait: a stalled
/// reader (a full pipe) must not stall the sessions that log.
fn write_stderr(line: &str) {
    let writable = crate::sys::poll(&[(2, libc::POLLOUT)], Some(Duration::ZERO))
        .is_ok_and(|ready| ready[0] & libc::POLLOUT != 0);
    if !writable {
        return;
    }
    let mut end = line.len().min(MAX_STDERR_LINE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    // One write call of at most PIPE_BUF bytes, line end included.
    let text = format!("{}\n", &line[..end]);
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

impl log::Log for ZohaLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        // One record is one line: a stray line end must not forge a second one.
        let message = escape_controls(&message);
        self.syslog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(record.level(), &message);
        if self.stderr.load(Ordering::Relaxed) {
            let pid = crate::sys::getpid();
            let level = match record.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                _ => "",
            };
            let stamp = crate::clock::log_stamp(crate::clock::now_secs());
            write_stderr(&format!("{stamp} zoha[{pid}]: {level}{message}"));
        }
    }

    fn flush(&self) {}
}
