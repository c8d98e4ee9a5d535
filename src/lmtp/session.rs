//! The LMTP session state machine (RFC 2033): one connection, any number of transactions.
//!
//! States: `Connected` (LHLO needed), `Ready` (no transaction), `Mail` (MAIL
//! accepted, RCPT and DATA or BDAT allowed), `Chunking` (BDAT chunks being
//! received). Every transition goes through [`Session::enter_state`]. Each
//! command gets exactly one reply, written by [`Session::reply`], which also
//! logs every failure once and counts protocol errors; after the message
//! each accepted recipient gets one reply, in RCPT order, duplicates
//! included. The session never touches files: it hands the spooled message
//! to [`crate::delivery`].
//!
//! Failures: protocol errors get `5xx` replies and the session goes on until
//! `max_errors` (`421 4.7.0`); idle or data timeouts end it with `421 4.4.2`;
//! a stop request ends an idle session with `421 4.3.2`; a lost connection
//! discards the transaction (nothing was stored, the spool is private).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::command::{self, Command, CommandError};
use super::conn::{Conn, Line, ReadError};
use super::Runtime;
use crate::account::{check_local_part, Lookup, Recipient};
use crate::address::{self, Mailbox};
use crate::data::{ChunkDecoder, Content, DotDecoder, MessageSink};
use crate::delivery::{self, Envelope, Outcome, Refusal, Target};
use crate::status::{address_for_reply, classify_io_error, Reply, Status};

/// Maximum length of a command line, CRLF excluded. RFC 5321 asks for at least
/// 512; SMTPUTF8 addresses and parameters need more.
pub const MAX_COMMAND_LINE: usize = 4096;

/// Rejected commands logged per session; the rest are counted at disconnect.
const MAX_LOGGED_REJECTS: u32 = 100;

/// Longest LHLO argument accepted (a domain name is at most 255 octets).
const MAX_LHLO_ARGUMENT: usize = 255;

/// Maximum length of the first word logged for an unknown command.
const MAX_LOGGED_VERB: usize = 32;

/// Maximum length of command text repeated in a log line.
const MAX_LOGGED_COMMAND: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connected,
    Ready,
    Mail,
    Chunking,
}

/// Whether the session continues after a command.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// An open transaction: MAIL through the end of the message.
struct Transaction {
    sender: Option<Mailbox>,
    declared_size: Option<u64>,
    targets: Vec<Target>,
    started: Instant,
    chunking: Option<(ChunkDecoder, MessageSink)>,
    /// RCPTs refused with 452 4.5.3; only the first is logged.
    excess_recipients: u64,
    /// The session id, for the log line about unlogged refusals.
    session: String,
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.excess_recipients > 1 {
            log::warn!(
                "{}: {} more recipients were refused with 452 4.5.3 (too many recipients) and not logged",
                self.session,
                self.excess_recipients - 1
            );
        }
    }
}

/// The client's address, formatted for logs and the Received header.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// For logs: `[192.0.2.1]:4321` or `[local]`.
    pub log: String,
    /// For Received: `[192.0.2.1]` or `local`.
    pub received: String,
}

impl PeerInfo {
    /// Describes a peer from its socket address.
    pub fn from_peer(peer: &crate::sys::Peer) -> PeerInfo {
        match peer {
            crate::sys::Peer::Inet(addr) => PeerInfo {
                log: format!("[{}]:{}", addr.ip(), addr.port()),
                received: format!("[{}]", addr.ip()),
            },
            _ => PeerInfo {
                log: "[local]".into(),
                received: "local".into(),
            },
        }
    }
}

static SESSION_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Returns a fresh six-digit hexadecimal session id.
pub fn next_session_id() -> String {
    let seed = crate::sys::getpid().wrapping_mul(2654435761) ^ (std::process::id() << 8);
    let n = SESSION_COUNTER
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(seed);
    format!("{:06X}", n & 0xFF_FFFF)
}

/// One LMTP connection.
pub struct Session {
    id: String,
    conn: Conn,
    runtime: Arc<Runtime>,
    peer: PeerInfo,
    state: State,
    lhlo: String,
    tx: Option<Transaction>,
    errors: u32,
    logged_rejects: u32,
    unlogged_rejects: u64,
    last_command: &'static str,
}

impl Session {
    /// Creates a session on `conn` with the settings of `runtime`.
    pub fn new(id: String, conn: Conn, runtime: Arc<Runtime>, peer: PeerInfo) -> Session {
        Session {
            id,
            conn,
            runtime,
            peer,
            state: State::Connected,
            lhlo: String::new(),
            tx: None,
            errors: 0,
            logged_rejects: 0,
            unlogged_rejects: 0,
            last_command: "CONNECT",
        }
    }

    /// Returns the session id used in logs.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs the session to its end.
    pub fn run(&mut self) {
        log::info!("{}: connect from {}", self.id, self.peer.log);
        let greeting = format!("{} LMTP ready", self.runtime.config.hostname);
        self.reply(Status::Greeting.reply(greeting), "", None);
        while self.step() == Flow::Continue {}
        if let Err(e) = self.conn.flush() {
            log::info!(
                "{}: cannot send the last replies to {}: {e}",
                self.id,
                self.peer.log
            );
        }
        if self.unlogged_rejects > 0 {
            log::warn!(
                "{}: {} more rejected commands were not logged (limit {MAX_LOGGED_REJECTS} a session)",
                self.id,
                self.unlogged_rejects
            );
        }
        log::info!("{}: disconnect from {}", self.id, self.peer.log);
    }

    /// Sends `421 4.3.0` after an internal error ended the session.
    pub fn abort_after_panic(&mut self) {
        self.tx = None;
        self.conn.queue(
            &Status::InternalError
                .reply("Internal error, closing connection")
                .to_string(),
        );
        let _ = self.conn.flush();
    }

    fn enter_state(&mut self, next: State) {
        if self.state != next {
            log::trace!("{}: state {:?} -> {:?}", self.id, self.state, next);
            self.state = next;
        }
    }

    fn is_idle(&self) -> bool {
        matches!(self.state, State::Connected | State::Ready)
    }

    /// Reads and handles one command.
    fn step(&mut self) -> Flow {
        let timeout = self.runtime.config.command_timeout;
        let idle = self.is_idle();
        let line = match self.conn.read_line(MAX_COMMAND_LINE, timeout, idle) {
            Ok(Line::Text(line)) => line,
            Ok(Line::TooLong) => {
                self.reply(
                    Status::LineTooLong
                        .reply(format!("Line too long (limit {MAX_COMMAND_LINE} octets)")),
                    "(long line)",
                    None,
                );
                return self.check_error_limit();
            }
            Err(e) => return self.end_on_read_error(e),
        };
        let flow = match command::parse(&line) {
            Ok(command) => self.dispatch(command, &line),
            Err(e) => {
                self.reject_line(e, &line);
                Flow::Continue
            }
        };
        if flow == Flow::Close {
            return Flow::Close;
        }
        self.check_error_limit()
    }

    fn check_error_limit(&mut self) -> Flow {
        if self.errors >= self.runtime.config.max_errors {
            self.tx = None;
            let context = format!("after {}", self.last_command);
            self.reply(
                Status::TooManyErrors.reply("Too many errors, closing connection"),
                &context,
                None,
            );
            return Flow::Close;
        }
        Flow::Continue
    }

    /// Ends the session after a failed read; in the middle of a
    /// transaction nothing was stored, so dropping it loses nothing.
    fn end_on_read_error(&mut self, error: ReadError) -> Flow {
        let in_transaction = self.tx.is_some();
        self.tx = None;
        match error {
            ReadError::Closed if self.last_command == "QUIT" => {}
            ReadError::Closed => log::info!(
                "{}: lost connection after {} from {}",
                self.id,
                self.last_command,
                self.peer.log
            ),
            ReadError::Timeout => {
                log::info!(
                    "{}: timeout after {} from {}",
                    self.id,
                    self.last_command,
                    self.peer.log
                );
                let text = format!(
                    "{} Timeout, closing connection",
                    self.runtime.config.hostname
                );
                self.reply(Status::Timeout.reply(text), "", None);
            }
            ReadError::Stop { hard } => {
                if hard && in_transaction {
                    log::warn!(
                        "{}: transaction aborted by shutdown after {}",
                        self.id,
                        self.last_command
                    );
                }
                let context = format!("after {}", self.last_command);
                self.reply(self.shutting_down_reply(), &context, None);
            }
            ReadError::Io(e) => log::info!(
                "{}: read error after {} from {}: {e}",
                self.id,
                self.last_command,
                self.peer.log
            ),
        }
        Flow::Close
    }

    fn shutting_down_reply(&self) -> Reply {
        let text = format!(
            "{} Service shutting down, try again later",
            self.runtime.config.hostname
        );
        Status::ServiceUnavailable.reply(text)
    }

    fn reject_line(&mut self, error: CommandError, line: &[u8]) {
        // An unknown line may be message text sent after a refused DATA:
        // only its first word is logged, never the text.
        let logged = match error {
            CommandError::Syntax(_) => escape_for_log(line),
            CommandError::BadCharacters | CommandError::Unknown => {
                let word = line.split(|&b| b == b' ').next().unwrap_or(line);
                escape_for_log(&word[..word.len().min(MAX_LOGGED_VERB)])
            }
        };
        let reply = match error {
            CommandError::BadCharacters => {
                Status::Unrecognized.reply("Invalid characters in command")
            }
            CommandError::Unknown => Status::Unrecognized.reply("Command unrecognized"),
            CommandError::Syntax(text) => Status::BadArguments.reply(text),
        };
        self.reply(reply, &logged, None);
    }

    /// Queues `reply`; failures are logged once with the command and detail.
    fn reply(&mut self, reply: Reply, command: &str, detail: Option<&str>) {
        self.conn.queue(&reply.to_string());
        if reply.status.is_protocol_error() {
            self.errors += 1;
        }
        if !reply.status.is_failure() || command.is_empty() {
            return;
        }
        // A client sending thousands of bad commands must not flood the log.
        if self.logged_rejects >= MAX_LOGGED_REJECTS {
            self.unlogged_rejects += 1;
            return;
        }
        self.logged_rejects += 1;
        let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
        if reply.status.is_permanent() {
            log::info!("{}: reject: {command}: {reply}{detail}", self.id);
        } else {
            log::warn!("{}: reject: {command}: {reply}{detail}", self.id);
        }
    }

    fn dispatch(&mut self, command: Command, line: &[u8]) -> Flow {
        let logged = escape_for_log(line);
        match command {
            Command::Lhlo(domain) => self.handle_lhlo(domain, &logged),
            Command::HeloOrEhlo => {
                self.last_command = "HELO";
                self.reply(
                    Status::LhloRequired.reply("LMTP requires LHLO, not HELO or EHLO"),
                    &logged,
                    None,
                );
            }
            Command::Mail(arg) => self.handle_mail(&arg, &logged),
            Command::Rcpt(arg) => self.handle_rcpt(&arg, &logged),
            Command::Data => return self.handle_data(&logged),
            Command::Bdat(arg) => return self.handle_bdat(&arg, &logged),
            Command::Rset => {
                self.last_command = "RSET";
                self.reset_transaction();
                self.reply(Status::Ok.reply("OK"), &logged, None);
            }
            Command::Noop => {
                self.last_command = "NOOP";
                self.reply(Status::Ok.reply("OK"), &logged, None);
            }
            Command::Vrfy => {
                self.last_command = "VRFY";
                self.reply(
                    Status::CannotVerify.reply("Cannot VRFY user; send RCPT to attempt delivery"),
                    &logged,
                    None,
                );
            }
            Command::Quit => {
                self.last_command = "QUIT";
                let text = format!("{} closing connection", self.runtime.config.hostname);
                self.reply(Status::Closing.reply(text), &logged, None);
                return Flow::Close;
            }
            Command::NotImplemented(verb) => {
                self.last_command = "UNKNOWN";
                // Only the verb is logged: AUTH lines may carry credentials.
                self.reply(
                    Status::NotImplemented.reply(format!("{verb} not implemented")),
                    &verb,
                    None,
                );
            }
        }
        Flow::Continue
    }

    fn reset_transaction(&mut self) {
        self.tx = None;
        let next = if self.lhlo.is_empty() {
            State::Connected
        } else {
            State::Ready
        };
        self.enter_state(next);
    }

    fn handle_lhlo(&mut self, domain: String, logged: &str) {
        self.last_command = "LHLO";
        // The argument goes into Received headers and logs: printable ASCII only.
        let valid = !domain.is_empty()
            && domain.len() <= MAX_LHLO_ARGUMENT
            && domain.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            self.reply(
                Status::BadArguments.reply("LHLO requires one domain name or address literal"),
                logged,
                None,
            );
            return;
        }
        if self.lhlo.is_empty() {
            log::info!("{}: client={} {}", self.id, domain, self.peer.log);
        }
        self.lhlo = domain;
        self.tx = None;
        self.enter_state(State::Ready);
        let config = &self.runtime.config;
        let lines = [
            config.hostname.clone(),
            "PIPELINING".into(),
            "ENHANCEDSTATUSCODES".into(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "CHUNKING".into(),
            format!("SIZE {}", config.max_message_size),
        ];
        let (code, _) = Status::Ok.codes();
        for (i, text) in lines.iter().enumerate() {
            let separator = if i + 1 == lines.len() { ' ' } else { '-' };
            self.conn.queue(&format!("{code}{separator}{text}"));
        }
    }

    fn handle_mail(&mut self, arg: &str, logged: &str) {
        self.last_command = "MAIL";
        let checked = self.check_mail(arg);
        let (sender, declared_size) = match checked {
            Ok(accepted) => accepted,
            Err(refusal) => return self.reply(refusal, logged, None),
        };
        self.tx = Some(Transaction {
            sender,
            declared_size,
            targets: Vec::new(),
            started: Instant::now(),
            chunking: None,
            excess_recipients: 0,
            session: self.id.clone(),
        });
        self.enter_state(State::Mail);
        self.reply(Status::SenderOk.reply("OK"), logged, None);
    }

    /// Checks a MAIL command: the sequence, the path and the parameters.
    /// Returns the sender and the declared size, or the refusal.
    fn check_mail(&self, arg: &str) -> Result<(Option<Mailbox>, Option<u64>), Reply> {
        match self.state {
            State::Connected => return Err(Status::BadSequence.reply("Send LHLO first")),
            State::Mail | State::Chunking => {
                return Err(Status::BadSequence.reply("Nested MAIL command"))
            }
            State::Ready => {}
        }
        let (sender, params) = address::parse_reverse_path(arg)
            .map_err(|e| Status::BadSender.reply(format!("Bad sender address syntax: {e}")))?;
        let max = self.runtime.config.max_message_size;
        let mut declared_size = None;
        for param in params {
            match (param.keyword.as_str(), param.value.as_deref()) {
                ("SIZE", Some(value)) => {
                    let size: u64 = value.parse().map_err(|_| {
                        Status::BadArguments.reply("SIZE requires a number of octets")
                    })?;
                    if size > max {
                        let text = format!(
                            "Message size exceeds fixed maximum message size ({max} bytes)"
                        );
                        return Err(Status::MessageTooBig.reply(text));
                    }
                    declared_size = Some(size);
                }
                ("BODY", Some(value))
                    if value.eq_ignore_ascii_case("7BIT")
                        || value.eq_ignore_ascii_case("8BITMIME") => {}
                ("BODY", _) => {
                    return Err(Status::UnsupportedParameter.reply("BODY must be 7BIT or 8BITMIME"))
                }
                ("SMTPUTF8", None) => {}
                (keyword, _) => {
                    let text = format!("Unsupported MAIL parameter {keyword}");
                    return Err(Status::UnsupportedParameter.reply(text));
                }
            }
        }
        Ok((sender, declared_size))
    }

    fn handle_rcpt(&mut self, arg: &str, logged: &str) {
        self.last_command = "RCPT";
        match self.state {
            State::Connected | State::Ready => {
                return self.reply(Status::BadSequence.reply("Need MAIL command"), logged, None)
            }
            State::Chunking => {
                return self.reply(Status::BadSequence.reply("RCPT after BDAT"), logged, None)
            }
            State::Mail => {}
        }
        let (mailbox, params) = match address::parse_forward_path(arg) {
            Ok(parsed) => parsed,
            Err(e) => {
                return self.reply(
                    Status::BadRecipient.reply(format!("Bad recipient address syntax: {e}")),
                    logged,
                    None,
                )
            }
        };
        if let Some(param) = params.first() {
            let text = format!("Unsupported RCPT parameter {}", param.keyword);
            return self.reply(Status::UnsupportedParameter.reply(text), logged, None);
        }
        match self.accept_recipient(&mailbox) {
            Ok(target) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.targets.push(target);
                }
                self.reply(Status::RecipientOk.reply("OK"), logged, None);
            }
            Err(refusal) if refusal.reply.status == Status::TooManyRecipients => {
                let first = self.tx.as_mut().map(|tx| {
                    tx.excess_recipients += 1;
                    tx.excess_recipients == 1
                });
                let command = if first == Some(true) { logged } else { "" };
                self.reply(refusal.reply, command, Some(&refusal.detail));
            }
            Err(refusal) => self.reply(refusal.reply, logged, Some(&refusal.detail)),
        }
    }

    /// Runs the RCPT checks: limit, name, lookup, account rules, quota.
    fn accept_recipient(&self, mailbox: &Mailbox) -> Result<Target, Refusal> {
        let address = mailbox.as_given.clone();
        let refuse = |status: Status, text: &str, detail: String| {
            Refusal::new(status, &address, text, detail)
        };
        let (count, declared_size) = self
            .tx
            .as_ref()
            .map(|t| (t.targets.len(), t.declared_size))
            .unwrap_or((0, None));
        let config = &self.runtime.config;
        if count >= config.max_recipients {
            return Err(Refusal {
                reply: Status::TooManyRecipients.reply("Too many recipients"),
                detail: format!("max_recipients is {}", config.max_recipients),
            });
        }
        if let Err(why) = check_local_part(&mailbox.local_part) {
            return Err(refuse(Status::UnknownUser, "User unknown", why.to_string()));
        }
        let recipient = Recipient::new(
            &mailbox.local_part,
            &mailbox.domain,
            &config.recipient_delimiter,
        );
        let account = match self.runtime.accounts.lookup(&recipient) {
            Lookup::Found(account) => *account,
            Lookup::Unknown => {
                return Err(refuse(
                    Status::UnknownUser,
                    "User unknown",
                    format!("no account for {recipient}"),
                ))
            }
            Lookup::Failed(why) => {
                return Err(refuse(
                    Status::LookupFailed,
                    "Temporary lookup failure",
                    why,
                ))
            }
        };
        let policy = &self.runtime.policy;
        delivery::check_account(policy, &address, &account)?;
        let target = Target {
            address,
            recipient,
            account,
        };
        delivery::check_quota(policy, &target, declared_size.unwrap_or(0))?;
        Ok(target)
    }

    /// Checks that a message may follow; returns the refusal otherwise.
    fn check_message_start(&self, is_bdat: bool) -> Option<Reply> {
        match self.state {
            State::Connected | State::Ready => Some(Status::BadSequence.reply("Need MAIL command")),
            State::Chunking if !is_bdat => Some(Status::BadSequence.reply("DATA after BDAT")),
            _ if self.tx.as_ref().is_none_or(|t| t.targets.is_empty()) => {
                Some(Status::BadSequence.reply("No valid recipients"))
            }
            _ => None,
        }
    }

    fn new_sink(&self) -> MessageSink {
        let config = &self.runtime.config;
        let capture = config.spam_header.as_ref().map(|h| h.name.clone());
        MessageSink::new(&config.spool_directory, config.max_message_size, capture)
    }

    fn handle_data(&mut self, logged: &str) -> Flow {
        self.last_command = "DATA";
        if let Some(refusal) = self.check_message_start(false) {
            self.reply(refusal, logged, None);
            return Flow::Continue;
        }
        self.reply(
            Status::StartData.reply("Start mail input; end with <CRLF>.<CRLF>"),
            logged,
            None,
        );
        let mut sink = self.new_sink();
        let mut decoder = DotDecoder::new();
        let mut transfer = Transfer::start(self.runtime.config.data_timeout);
        loop {
            if let Err(e) = transfer.wait().and_then(|wait| self.conn.fill(wait, false)) {
                return self.end_on_read_error(e);
            }
            let input = self.conn.buffered();
            let end = decoder.feed(input, &mut |bytes| sink.write(bytes));
            let used = end.unwrap_or(input.len());
            self.conn.consume(used);
            transfer.received += used as u64;
            if end.is_some() {
                break;
            }
        }
        self.last_command = "END-OF-MESSAGE";
        self.finish_transaction(sink.finish())
    }

    fn handle_bdat(&mut self, arg: &str, logged: &str) -> Flow {
        self.last_command = "BDAT";
        let Some((size, last)) = parse_bdat_arguments(arg) else {
            // The chunk length is unknown, so the input cannot be followed.
            self.reply(
                Status::BadArguments
                    .reply("BDAT requires a chunk size and optionally LAST; closing connection"),
                logged,
                None,
            );
            return Flow::Close;
        };
        if let Some(refusal) = self.check_message_start(true) {
            if let Err(e) = self.read_chunk(size, None) {
                return self.end_on_read_error(e);
            }
            self.reply(refusal, logged, None);
            if last && self.state == State::Mail {
                self.reset_transaction();
            }
            return Flow::Continue;
        }
        let (mut decoder, mut sink) = match self.tx.as_mut().and_then(|t| t.chunking.take()) {
            Some(pair) => pair,
            None => (ChunkDecoder::default(), self.new_sink()),
        };
        self.enter_state(State::Chunking);
        if let Err(e) = self.read_chunk(size, Some((&mut decoder, &mut sink))) {
            return self.end_on_read_error(e);
        }
        if !last {
            if let Some(tx) = self.tx.as_mut() {
                tx.chunking = Some((decoder, sink));
            }
            self.reply(
                Status::Ok.reply(format!("{size} octets received")),
                logged,
                None,
            );
            return Flow::Continue;
        }
        decoder.finish(&mut |bytes| sink.write(bytes));
        self.last_command = "END-OF-MESSAGE";
        self.finish_transaction(sink.finish())
    }

    /// Reads exactly `size` octets of a BDAT chunk into the decoder, or
    /// discards them when `target` is `None`.
    fn read_chunk(
        &mut self,
        size: u64,
        mut target: Option<(&mut ChunkDecoder, &mut MessageSink)>,
    ) -> Result<(), ReadError> {
        let mut transfer = Transfer::start(self.runtime.config.data_timeout);
        let mut left = size;
        while left > 0 {
            self.conn.fill(transfer.wait()?, false)?;
            let input = self.conn.buffered();
            let take = (input.len() as u64).min(left) as usize;
            if let Some((decoder, sink)) = target.as_mut() {
                decoder.feed(&input[..take], &mut |bytes| sink.write(bytes));
            }
            self.conn.consume(take);
            transfer.received += take as u64;
            left -= take as u64;
        }
        Ok(())
    }

    /// Delivers the message to every accepted recipient and sends one reply
    /// for each, in RCPT order.
    fn finish_transaction(&mut self, mut content: Content) -> Flow {
        let Some(tx) = self.tx.take() else {
            return Flow::Continue;
        };
        self.reset_transaction();
        let size = content.received_size;
        let sender = tx
            .sender
            .as_ref()
            .map(|m| m.as_given.clone())
            .unwrap_or_default();
        log::info!(
            "{}: from=<{}>, size={}, nrcpt={}",
            self.id,
            sender,
            size,
            tx.targets.len()
        );

        let envelope = Envelope {
            sender,
            lhlo: self.lhlo.clone(),
            peer: self.peer.received.clone(),
            date: crate::clock::rfc5322_date(crate::clock::now_secs()),
        };
        let mut done: Vec<(String, Reply)> = Vec::new();
        for target in &tx.targets {
            if self.conn.abort_requested() {
                log::warn!(
                    "{}: shutdown: no delivery to <{}> or later recipients",
                    self.id,
                    target.address
                );
                return Flow::Close;
            }
            let reply = match done.iter().find(|(address, _)| *address == target.address) {
                // An exact duplicate RCPT shares the first one's outcome and file.
                Some((_, reply)) => reply.clone(),
                None => {
                    let outcome = self.deliver_one(&envelope, target, &mut content);
                    self.log_outcome(target, &outcome, tx.started);
                    outcome.reply
                }
            };
            done.push((target.address.clone(), reply.clone()));
            self.conn.queue(&reply.to_string());
        }
        if self.conn.stop_requested() {
            self.reply(self.shutting_down_reply(), "after END-OF-MESSAGE", None);
            return Flow::Close;
        }
        Flow::Continue
    }

    fn deliver_one(&self, envelope: &Envelope, target: &Target, content: &mut Content) -> Outcome {
        let address = address_for_reply(&target.address);
        if content.too_big {
            let text = format!(
                "<{address}> Message size exceeds fixed maximum message size ({} bytes)",
                self.runtime.config.max_message_size
            );
            return Outcome {
                reply: Status::MessageTooBig.reply(text),
                delivered: None,
                detail: None,
            };
        }
        if let Some(e) = &content.error {
            let status = classify_io_error(e, Status::StorageFailed);
            let text = format!("<{address}> {}", delivery::status_text(status));
            let detail = format!("spooling the message failed: {e}");
            return Outcome {
                reply: status.reply(text),
                delivered: None,
                detail: Some(detail),
            };
        }
        delivery::deliver(&self.runtime.policy, envelope, target, content)
    }

    /// Writes the one log line for a recipient's outcome.
    fn log_outcome(&self, target: &Target, outcome: &Outcome, started: Instant) {
        let delay = started.elapsed();
        // As in Postfix: to= is the recipient without +detail, orig_to= the
        // address as the client gave it, when they differ.
        let final_recipient = target.recipient.to_string();
        let mut line = format!("{}: to=<{final_recipient}>", self.id);
        if target.address != final_recipient {
            line.push_str(&format!(", orig_to=<{}>", target.address));
        }
        line.push_str(&format!(", uid={}", target.account.uid));
        if let Some(d) = &outcome.delivered {
            line.push_str(&format!(", path={}", d.path.display()));
        }
        line.push_str(&format!(
            ", delay={}, dsn={}, status={} ({})",
            format_delay(delay),
            outcome.reply.dsn(),
            outcome.reply.outcome(),
            outcome.reply
        ));
        if let Some(detail) = &outcome.detail {
            line.push_str(&format!(": {detail}"));
        }
        match outcome.reply.outcome() {
            "sent" | "bounced" => log::info!("{line}"),
            _ => log::warn!("{line}"),
        }
    }
}

/// Slowest average rate accepted for message data once `data_timeout` has
/// passed, in bytes per second; Postfix's `smtpd_min_data_rate` has the
/// same default.
const MIN_DATA_RATE: u64 = 500;

/// The time limits of one DATA or BDAT transfer: each read waits at most
/// `data_timeout`, and the whole transfer may take `data_timeout` plus one
/// second per [`MIN_DATA_RATE`] bytes received, so a client trickling bytes
/// cannot keep a worker for ever.
struct Transfer {
    started: Instant,
    timeout: Duration,
    received: u64,
}

impl Transfer {
    fn start(timeout: Duration) -> Transfer {
        Transfer {
            started: Instant::now(),
            timeout,
            received: 0,
        }
    }

    /// Returns how long the next read may wait, or a timeout error.
    fn wait(&self) -> Result<Duration, ReadError> {
        let allowed = self.timeout + Duration::from_secs(self.received / MIN_DATA_RATE);
        let deadline = self.started + allowed;
        super::conn::time_left(deadline).map(|left| left.min(self.timeout))
    }
}

/// Parses `<size> [LAST]`.
fn parse_bdat_arguments(arg: &str) -> Option<(u64, bool)> {
    let mut words = arg.split(' ').filter(|w| !w.is_empty());
    let size = words.next()?;
    if !size.bytes().all(|b| b.is_ascii_digit()) || size.len() > 18 {
        return None;
    }
    let size: u64 = size.parse().ok()?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return None,
    };
    if words.next().is_some() {
        return None;
    }
    Some((size, last))
}

fn format_delay(delay: Duration) -> String {
    format!("{:.3}", delay.as_secs_f64())
}

/// Makes peer text safe for one log line: printable text is kept, bytes
/// that are not UTF-8 become `\xNN`, control characters and characters that
/// reorder or break lines become `\u{NNNN}`, and the result is cut at
/// [`MAX_LOGGED_COMMAND`] characters.
pub fn escape_for_log(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut count = 0;
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid().chars().map(|c| {
            let unsafe_char = c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            if unsafe_char {
                format!("\\u{{{:04X}}}", u32::from(c))
            } else {
                c.to_string()
            }
        });
        let invalid = chunk.invalid().iter().map(|b| format!("\\x{b:02X}"));
        for piece in valid.chain(invalid) {
            if count >= MAX_LOGGED_COMMAND {
                out.push_str("...");
                return out;
            }
            out.push_str(&piece);
            count += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdat_arguments() {
        assert_eq!(parse_bdat_arguments("100"), Some((100, false)));
        assert_eq!(parse_bdat_arguments("0 LAST"), Some((0, true)));
        assert_eq!(parse_bdat_arguments("10 last"), Some((10, true)));
        assert_eq!(parse_bdat_arguments(""), None);
        assert_eq!(parse_bdat_arguments("-1"), None);
        assert_eq!(parse_bdat_arguments("10 FIRST"), None);
        assert_eq!(parse_bdat_arguments("10 LAST x"), None);
        assert_eq!(parse_bdat_arguments("99999999999999999999999"), None);
    }

    #[test]
    fn log_escaping() {
        assert_eq!(escape_for_log(b"RCPT TO:<a\x01b>"), "RCPT TO:<a\\u{0001}b>");
        assert_eq!(escape_for_log(b"a\xff\xfeb"), "a\\xFF\\xFEb");
        assert_eq!(escape_for_log("a\u{2028}b".as_bytes()), "a\\u{2028}b");
        assert_eq!(escape_for_log("jörg".as_bytes()), "jörg");
        assert!(escape_for_log(&[b'x'; 500]).ends_with("..."));
    }

    #[test]
    fn session_ids_fixed_width() {
        for _ in 0..100 {
            let id = next_session_id();
            assert_eq!(id.len(), 6);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
}
