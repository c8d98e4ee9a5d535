//! LMTP server side: serves one connection from greeting to close.
//!
//! Exports [`Runtime`] (the settings, account sources and delivery policy a
//! session uses; replaced as a whole on reload), [`serve`] (runs one
//! session and contains panics), and the submodules [`conn`], [`command`]
//! and [`session`].
//!
//! Failures: a panic inside a session is caught here; the client gets
//! `421 4.3.0`, the log gets the panic message, and the daemon goes on.

pub mod command;
pub mod conn;
pub mod session;

use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use crate::account::Accounts;
use crate::config::Config;
use crate::delivery::Policy;
use crate::shutdown::Shutdown;

/// Everything a session needs besides its connection.
pub struct Runtime {
    /// The configuration in effect when the session started.
    pub config: Arc<Config>,
    /// The account sources.
    pub accounts: Arc<Accounts>,
    /// The delivery rules.
    pub policy: Policy,
    /// The server's stop flags.
    pub shutdown: Arc<Shutdown>,
}

/// Serves one LMTP session on `read_fd`/`write_fd`, which `owner` keeps
/// open. Returns when the session ends; a panic ends only this session.
pub fn serve(
    read_fd: RawFd,
    write_fd: RawFd,
    owner: Box<dyn Send>,
    peer: crate::sys::Peer,
    runtime: Arc<Runtime>,
) {
    let id = session::next_session_id();
    let write_timeout = runtime.config.command_timeout;
    let conn = conn::Conn::new(
        read_fd,
        write_fd,
        owner,
        runtime.shutdown.signals(),
        write_timeout,
    );
    let peer = session::PeerInfo::from_peer(&peer);
    let mut session = session::Session::new(id, conn, runtime, peer);
    let result = panic::catch_unwind(AssertUnwindSafe(|| session.run()));
    if let Err(payload) = result {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        log::error!("{}: internal error, session ended: {message}", session.id());
        session.abort_after_panic();
    }
}
