//! Zoha: an LMTP server (RFC 2033) that stores mail in Maildirs as each mailbox's owner.
//!
//! Postfix (or any MTA) hands Zoha messages over TCP or a UNIX socket; Zoha
//! looks each recipient up in a Courier userdb file, the system user
//! database or courier-authlib, writes the message into the recipient's
//! Maildir with the owner's credentials, and answers `250` only after the
//! file and its directory entry are on disk.
//!
//! Modules, from the outside in: [`cli`] (command line), [`clock`] (time
//! formats), [`config`]
//! (`zoha.conf`), [`daemon`] (start, signals, stop), [`server`] (listeners
//! and worker pool), [`lmtp`] (the protocol), [`address`] (RFC 5321 paths),
//! [`data`] (DATA and BDAT decoding, spooling), [`account`] (lookups),
//! [`delivery`] (policy and one delivery), [`maildir`] (files, folders,
//! quota), [`creds`] (credential switching), [`status`] (every reply code),
//! [`logging`] (syslog), [`shutdown`] (stop signals) and [`sys`] (every libc call).
//!
//! Failures: each module documents its own; every reply code is in [`status`].

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod account;
pub mod address;
pub mod cli;
pub mod clock;
pub mod config;
pub mod creds;
pub mod daemon;
pub mod data;
pub mod delivery;
pub mod lmtp;
pub mod logging;
pub mod maildir;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod sys;
