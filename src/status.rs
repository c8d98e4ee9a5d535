//! Reply codes: every LMTP reply code and enhanced status code Zoha sends.
//!
//! Exports [`Status`], one variant per situation, each mapped to exactly one
//! basic code and enhanced code (RFC 3463) by an exhaustive `match`; [`Reply`],
//! a status with its text; and [`classify_io_error`], the single place where an
//! errno becomes a status. No other module spells a reply code.
//!
//! Failures: none; this module only describes them.

use std::fmt;
use std::io;

/// An enhanced mail system status code, `class.subject.detail` (RFC 3463).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode {
    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    pub class: u8,
    /// The subject digit group.
    pub subject: u16,
    /// The detail digit group.
    pub detail: u16,
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

const fn enhanced(class: u8, subject: u16, detail: u16) -> Option<EnhancedCode> {
    Some(EnhancedCode {
        class,
        subject,
        detail,
    })
}

/// Every situation Zoha replies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Greeting at connect.
    Greeting,
    /// Reply to QUIT.
    Closing,
    /// Generic success: RSET, NOOP, LHLO, a BDAT chunk.
    Ok,
    /// MAIL accepted.
    SenderOk,
    /// RCPT accepted.
    RecipientOk,
    /// Message stored durably for one recipient.
    Delivered,
    /// VRFY: Zoha does not verify addresses outside a transaction.
    CannotVerify,
    /// DATA accepted, send the message.
    StartData,
    /// The server is stopping or all workers are busy.
    ServiceUnavailable,
    /// No command or data within the time limit.
    Timeout,
    /// Too many bad commands in one session.
    TooManyErrors,
    /// An internal error ended the session.
    InternalError,
    /// The account source failed; try later.
    LookupFailed,
    /// The account or mailbox is set up in a way Zoha must not deliver to.
    Misconfigured,
    /// Writing to the Maildir failed.
    StorageFailed,
    /// The file system is full.
    DiskFull,
    /// The mailbox is over quota, deferred (the default).
    OverQuotaDefer,
    /// The mailbox is over quota, rejected (`quota_reply = reject`).
    OverQuotaReject,
    /// More recipients than `max_recipients`.
    TooManyRecipients,
    /// Unknown command or a line that could not be parsed.
    Unrecognized,
    /// A command line over the length limit.
    LineTooLong,
    /// HELO or EHLO on an LMTP server.
    LhloRequired,
    /// Bad arguments to a command.
    BadArguments,
    /// Bad syntax of the MAIL path.
    BadSender,
    /// Bad syntax of the RCPT path.
    BadRecipient,
    /// A known command Zoha does not implement.
    NotImplemented,
    /// Command out of order.
    BadSequence,
    /// An unknown or unsupported MAIL or RCPT parameter.
    UnsupportedParameter,
    /// No such mailbox.
    UnknownUser,
    /// The message is larger than `max_message_size`.
    MessageTooBig,
}

impl Status {
    /// Returns the basic reply code and the enhanced code, if the reply has one.
    pub fn codes(self) -> (u16, Option<EnhancedCode>) {
        match self {
            Status::Greeting => (220, None),
            Status::Closing => (221, enhanced(2, 0, 0)),
            Status::Ok => (250, enhanced(2, 0, 0)),
            Status::SenderOk => (250, enhanced(2, 1, 0)),
            Status::RecipientOk => (250, enhanced(2, 1, 5)),
            Status::Delivered => (250, enhanced(2, 0, 0)),
            Status::CannotVerify => (252, enhanced(2, 5, 0)),
            Status::StartData => (354, None),
            Status::ServiceUnavailable => (421, enhanced(4, 3, 2)),
            Status::Timeout => (421, enhanced(4, 4, 2)),
            Status::TooManyErrors => (421, enhanced(4, 7, 0)),
            Status::InternalError => (421, enhanced(4, 3, 0)),
            Status::LookupFailed => (451, enhanced(4, 3, 0)),
            Status::Misconfigured => (451, enhanced(4, 3, 5)),
            Status::StorageFailed => (451, enhanced(4, 3, 0)),
            Status::DiskFull => (452, enhanced(4, 3, 1)),
            Status::OverQuotaDefer => (452, enhanced(4, 2, 2)),
            Status::OverQuotaReject => (552, enhanced(5, 2, 2)),
            Status::TooManyRecipients => (452, enhanced(4, 5, 3)),
            Status::Unrecognized => (500, enhanced(5, 5, 2)),
            Status::LineTooLong => (500, enhanced(5, 5, 2)),
            Status::LhloRequired => (500, enhanced(5, 5, 1)),
            Status::BadArguments => (501, enhanced(5, 5, 4)),
            Status::BadSender => (501, enhanced(5, 1, 7)),
            Status::BadRecipient => (501, enhanced(5, 1, 3)),
            Status::NotImplemented => (502, enhanced(5, 5, 1)),
            Status::BadSequence => (503, enhanced(5, 5, 1)),
            Status::UnsupportedParameter => (555, enhanced(5, 5, 4)),
            Status::UnknownUser => (550, enhanced(5, 1, 1)),
            Status::MessageTooBig => (552, enhanced(5, 3, 4)),
        }
    }

    /// Returns the basic three-digit reply code.
    pub fn code(self) -> u16 {
        self.codes().0
    }

    /// Reports whether the reply is a failure (4xx or 5xx).
    pub fn is_failure(self) -> bool {
        self.code() >= 400
    }

    /// Reports whether a failure is permanent (5xx) rather than transient.
    pub fn is_permanent(self) -> bool {
        self.code() >= 500
    }

    /// Reports whether the reply is for a protocol error by the client
    /// (syntax, sequence, unknown command); these count toward `max_errors`.
    pub fn is_protocol_error(self) -> bool {
        matches!(
            self,
            Status::Unrecognized
                | Status::LineTooLong
                | Status::LhloRequired
                | Status::BadArguments
                | Status::BadSender
                | Status::BadRecipient
                | Status::NotImplemented
                | Status::BadSequence
                | Status::UnsupportedParameter
        )
    }

    /// Builds a reply with this status and `text`.
    pub fn reply(self, text: impl Into<String>) -> Reply {
        Reply {
            status: self,
            text: text.into(),
        }
    }
}

/// One LMTP reply: a status and its human-readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The situation, which fixes both codes.
    pub status: Status,
    /// Free text after the codes; never contains CR or LF.
    pub text: String,
}

impl Reply {
    /// Returns the log form of the outcome: `sent`, `deferred` or `bounced`.
    pub fn outcome(&self) -> &'static str {
        if !self.status.is_failure() {
            "sent"
        } else if self.status.is_permanent() {
            "bounced"
        } else {
            "deferred"
        }
    }

    /// Returns the enhanced code as text, or an empty string when there is none.
    pub fn dsn(&self) -> String {
        self.status
            .codes()
            .1
            .map(|c| c.to_string())
            .unwrap_or_default()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, enhanced) = self.status.codes();
        match enhanced {
            Some(e) => write!(f, "{code} {e} {}", self.text),
            None => write!(f, "{code} {}", self.text),
        }
    }
}

/// Longest address repeated in a reply. RFC 5321 limits a path to 256
/// octets (section 4.5.3.1.3) and a reply line to 512 (section 4.5.3.1.5).
const MAX_ECHOED_ADDRESS: usize = 256;

/// Returns `address` for a reply text: unchanged when short, else cut at a
/// character boundary and marked with `...`.
pub fn address_for_reply(address: &str) -> String {
    if address.len() <= MAX_ECHOED_ADDRESS {
        return address.to_string();
    }
    let mut end = MAX_ECHOED_ADDRESS;
    while !address.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &address[..end])
}

/// Maps an OS error from a delivery step to a status: disk full and quota
/// exceeded have fixed codes, everything else gets `default` (a 4xx, because
/// Maildir paths come from the administrator and most failures are fixable).
pub fn classify_io_error(err: &io::Error, default: Status) -> Status {
    match err.raw_os_error() {
        Some(libc::ENOSPC) => Status::DiskFull,
        Some(libc::EDQUOT) => Status::OverQuotaDefer,
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_display_with_enhanced_code() {
        let r = Status::UnknownUser.reply("<a@b> User unknown");
        assert_eq!(r.to_string(), "550 5.1.1 <a@b> User unknown");
    }

    #[test]
    fn reply_display_without_enhanced_code() {
        assert_eq!(Status::StartData.reply("go on").to_string(), "354 go on");
    }

    #[test]
    fn enhanced_class_matches_basic_code() {
        let all = [
            Status::Closing,
            Status::Ok,
            Status::SenderOk,
            Status::RecipientOk,
            Status::Delivered,
            Status::CannotVerify,
            Status::ServiceUnavailable,
            Status::Timeout,
            Status::TooManyErrors,
            Status::InternalError,
            Status::LookupFailed,
            Status::Misconfigured,
            Status::StorageFailed,
            Status::DiskFull,
            Status::OverQuotaDefer,
            Status::OverQuotaReject,
            Status::TooManyRecipients,
            Status::Unrecognized,
            Status::LineTooLong,
            Status::LhloRequired,
            Status::BadArguments,
            Status::BadSender,
            Status::BadRecipient,
            Status::NotImplemented,
            Status::BadSequence,
            Status::UnsupportedParameter,
            Status::UnknownUser,
            Status::MessageTooBig,
        ];
        for status in all {
            let (code, e) = status.codes();
            let e = e.expect("enhanced code present");
            assert_eq!(u16::from(e.class), code / 100, "{status:?}");
        }
    }

    #[test]
    fn classify_disk_full() {
        let err = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(
            classify_io_error(&err, Status::StorageFailed),
            Status::DiskFull
        );
    }

    #[test]
    fn classify_quota_exceeded() {
        let err = io::Error::from_raw_os_error(libc::EDQUOT);
        assert_eq!(
            classify_io_error(&err, Status::StorageFailed),
            Status::OverQuotaDefer
        );
    }

    #[test]
    fn classify_other_errors_use_default() {
        for errno in [
            libc::EACCES,
            libc::EIO,
            libc::EROFS,
            libc::ENOENT,
            libc::EAGAIN,
            libc::ELOOP,
        ] {
            let err = io::Error::from_raw_os_error(errno);
            assert_eq!(
                classify_io_error(&err, Status::StorageFailed),
                Status::StorageFailed
            );
        }
    }

    #[test]
    fn long_address_cut_for_reply() {
        assert_eq!(address_for_reply("a@b"), "a@b");
        let long = "ä".repeat(200);
        let cut = address_for_reply(&long);
        assert!(cut.len() <= MAX_ECHOED_ADDRESS + 3, "{}", cut.len());
        assert!(cut.ends_with("..."));
    }

    #[test]
    fn outcome_words() {
        assert_eq!(Status::Delivered.reply("x").outcome(), "sent");
        assert_eq!(Status::DiskFull.reply("x").outcome(), "deferred");
        assert_eq!(Status::UnknownUser.reply("x").outcome(), "bounced");
    }
}
