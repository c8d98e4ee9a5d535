//! Stop signals: lets every session notice a stop request while it waits for input.
//!
//! Two pipes act as broadcast flags. Closing a pipe's write end makes its
//! read end readable for every `poll` at once, forever, so each session
//! polls the read ends next to its socket. The soft signal asks idle
//! sessions to close with `421 4.3.2` and busy ones to finish the transaction
//! in flight; the hard signal (after `shutdown_timeout`) asks all to stop now.
//!
//! Failures: creating the pipes can fail with an OS error at start.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

/// The server-wide stop flags.
pub struct Shutdown {
    soft_read: OwnedFd,
    soft_write: Mutex<Option<OwnedFd>>,
    hard_read: OwnedFd,
    hard_write: Mutex<Option<OwnedFd>>,
}

/// The read ends a session polls; they stay valid while this value lives.
#[derive(Clone)]
pub struct StopSignals {
    /// Readable once a stop was requested.
    pub soft: RawFd,
    /// Readable once sessions must abort.
    pub hard: RawFd,
    _owner: Arc<Shutdown>,
}

impl Shutdown {
    /// Creates the two pipes.
    pub fn new() -> io::Result<Arc<Shutdown>> {
        let (soft_read, soft_write) = crate::sys::pipe()?;
        let (hard_read, hard_write) = crate::sys::pipe()?;
        Ok(Arc::new(Shutdown {
            soft_read,
            soft_write: Mutex::new(Some(soft_write)),
            hard_read,
            hard_write: Mutex::new(Some(hard_write)),
        }))
    }

    /// Returns the descriptors sessions poll.
    pub fn signals(self: &Arc<Shutdown>) -> StopSignals {
        StopSignals {
            soft: self.soft_read.as_raw_fd(),
            hard: self.hard_read.as_raw_fd(),
            _owner: Arc::clone(self),
        }
    }

    /// Asks sessions to finish their transaction and close.
    pub fn request_stop(&self) {
        self.soft_write
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Asks sessions to abort now (also implies a stop).
    pub fn request_abort(&self) {
        self.request_stop();
        self.hard_write
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    #[cfg(test)]
    /// Reports whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.soft_write
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stop_makes_read_end_ready() {
        let s = Shutdown::new().unwrap();
        let signals = s.signals();
        let ready =
            crate::sys::poll(&[(signals.soft, libc::POLLIN)], Some(Duration::ZERO)).unwrap();
        assert_eq!(ready[0], 0);
        s.request_stop();
        assert!(s.is_stopping());
        for _ in 0..2 {
            let ready = crate::sys::poll(
                &[(signals.soft, libc::POLLIN), (signals.hard, libc::POLLIN)],
                Some(Duration::ZERO),
            )
            .unwrap();
            assert_ne!(ready[0], 0);
            assert_eq!(ready[1], 0);
        }
        s.request_abort();
        let ready =
            crate::sys::poll(&[(signals.hard, libc::POLLIN)], Some(Duration::ZERO)).unwrap();
        assert_ne!(ready[0], 0);
    }
}
