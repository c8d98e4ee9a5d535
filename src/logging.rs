//! Logging: sends `log` records to syslog and, in the foreground, to standard error.
//!
//! Syslog lines use ident `zoha`, the process id, the facility from
//! `syslog_facility` and the socket from `syslog_socket` (`/dev/log` by
//! default), in the RFC 3164 format of the `syslog` crate. Levels map to
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

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use syslog::{Facility, Formatter3164, LoggerBackend};

/// How often a lost syslog connection is retried.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(10);

struct SyslogState {
    logger: Option<syslog::Logger<LoggerBackend, Formatter3164>>,
    last_attempt: Option<Instant>,
    socket: PathBuf,
    facility: Facility,
    pid: u32,
}

struct ZohaLogger {
    syslog: Mutex<SyslogState>,
    stderr: Mutex<bool>,
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
    /// The most verbose level logged.
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
        }),
        stderr: Mutex::new(settings.stderr),
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
        *logger.stderr.lock().unwrap_or_else(|p| p.into_inner()) = settings.stderr;
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

/// Stops writing to standard error (after detaching from the terminal).
pub fn disable_stderr() {
    if let Some(logger) = LOGGER.get() {
        *logger.stderr.lock().unwrap_or_else(|p| p.into_inner()) = false;
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
        let formatter = Formatter3164 {
            facility: self.facility,
            hostname: None,
            process: "zoha".into(),
            pid: self.pid,
        };
        self.logger = syslog::unix_custom(formatter, &self.socket).ok();
    }

    fn send(&mut self, level: log::Level, message: &str) {
        if self.logger.is_none() {
            self.connect();
        }
        let Some(logger) = self.logger.as_mut() else {
            return;
        };
        let result = match level {
            log::Level::Error => logger.err(message),
            log::Level::Warn => logger.warning(message),
            log::Level::Info => logger.info(message),
            log::Level::Debug | log::Level::Trace => logger.debug(message),
        };
        if result.is_err() {
            // The daemon went away or was restarted: reconnect later.
            self.logger = None;
        }
    }
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
        let message = message.replace(['\n', '\r'], " ");
        self.syslog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(record.level(), &message);
        if *self.stderr.lock().unwrap_or_else(|p| p.into_inner()) {
            let pid = crate::sys::getpid();
            let level = match record.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                _ => "",
            };
            let stamp = timestamp();
            let _ = writeln!(
                std::io::stderr().lock(),
                "{stamp} zoha[{pid}]: {level}{message}"
            );
        }
    }

    fn flush(&self) {}
}

/// Returns the local time as `YYYY-MM-DD HH:MM:SS`.
fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match crate::sys::local_time(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ),
        Err(_) => secs.to_string(),
    }
}
