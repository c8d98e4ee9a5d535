//! Delivery policy and execution: decides whether an account may receive mail and stores one copy.
//!
//! At RCPT, [`check_account`] applies the rules that do not need the
//! message: never uid 0 or a uid below `min_uid`, in single-user mode only
//! the daemon's own uid, only mailboxes stored on this node (`mailhost`),
//! and [`check_quota`] checks the declared SIZE against the Maildir++ quota.
//! After the data, [`deliver`] stores one recipient's copy: it picks the
//! folder (spam routing, then `+detail` folders), takes on the owner's
//! credentials in root mode, opens the Maildir safely, checks the quota
//! with the real size, writes the file and appends the quota line, then
//! returns the reply. It never writes to the client; the session does.
//!
//! Exports [`Mode`], [`Policy`], [`Target`], [`Envelope`], [`Outcome`],
//! [`Refusal`], [`check_account`], [`check_quota`], [`deliver`] and
//! [`received_date`].
//!
//! Failures: every refusal carries its reply and a log detail: `451 4.3.5`
//! for uid and mailhost rules, `452 4.2.2` or `552 5.2.2` over quota, the
//! [`crate::maildir::DeliveryError`] status for storage problems, and
//! `451 4.3.0` when credentials cannot be switched.

use crate::account::{Account, Recipient};
use crate::config::{Config, DetailFolders, QuotaReply, SpamHeader};
use crate::creds;
use crate::data::Content;
use crate::maildir::{self, folder, quota, Delivered, DeliveryError, Maildir, Message};
use crate::status::{address_for_reply, Reply, Status};

/// The credential mode: how the daemon acts for mailbox owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Running as root: switch to each owner's credentials per delivery.
    Root,
    /// Running as one user for good: deliver only to that uid's mailboxes.
    SingleUser {
        /// The daemon's uid.
        uid: u32,
    },
}

impl Mode {
    /// Detects the mode from the process's effective uid: root means
    /// per-recipient switching, anything else single-user.
    pub fn detect() -> Mode {
        match crate::sys::geteuid() {
            0 => Mode::Root,
            uid => Mode::SingleUser { uid },
        }
    }
}

/// The settings delivery depends on.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Credential mode.
    pub mode: Mode,
    /// `min_uid`
    pub min_uid: u32,
    /// `hostname`
    pub hostname: String,
    /// `fsync`
    pub fsync: bool,
    /// `quota_reply`
    pub quota_reply: QuotaReply,
    /// `detail_folders`
    pub detail_folders: DetailFolders,
    /// `spam_header`
    pub spam_header: Option<SpamHeader>,
    /// `spam_folder`, with its dot
    pub spam_folder: String,
}

impl Policy {
    /// Takes the delivery settings from `config`.
    pub fn new(config: &Config, mode: Mode) -> Policy {
        Policy {
            mode,
            min_uid: config.min_uid,
            hostname: config.hostname.clone(),
            fsync: config.fsync,
            quota_reply: config.quota_reply,
            detail_folders: config.detail_folders,
            spam_header: config.spam_header.clone(),
            spam_folder: config.spam_folder.clone(),
        }
    }

    fn over_quota_status(&self) -> Status {
        match self.quota_reply {
            QuotaReply::Defer => Status::OverQuotaDefer,
            QuotaReply::Reject => Status::OverQuotaReject,
        }
    }
}

/// An accepted recipient.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address as the client gave it (without angle brackets).
    pub address: String,
    /// The address split for lookups.
    pub recipient: Recipient,
    /// The account found at RCPT, used again at delivery.
    pub account: Account,
}

/// A refusal: the reply, and details for the log only.
#[derive(Debug)]
pub struct Refusal {
    /// The reply for the client.
    pub reply: Reply,
    /// Details for the log only (paths, uids, OS errors).
    pub detail: String,
}

impl Refusal {
    /// Builds a refusal whose reply names `address` (cut when very long).
    pub fn new(status: Status, address: &str, text: &str, detail: String) -> Refusal {
        let address = address_for_reply(address);
        Refusal {
            reply: status.reply(format!("<{address}> {text}")),
            detail,
        }
    }
}

/// Applies the rules that need only the account.
pub fn check_account(policy: &Policy, address: &str, account: &Account) -> Result<(), Refusal> {
    if account.uid == 0 || account.uid < policy.min_uid {
        return Err(Refusal::new(
            Status::Misconfigured,
            address,
            "Mailbox owner not allowed",
            format!(
                "uid {} of {} is below min_uid {} (root is never allowed)",
                account.uid, account.name, policy.min_uid
            ),
        ));
    }
    if account.gid == 0 {
        return Err(Refusal::new(
            Status::Misconfigured,
            address,
            "Mailbox owner not allowed",
            format!("gid 0 of {} is not allowed", account.name),
        ));
    }
    if let Mode::SingleUser { uid } = policy.mode {
        if account.uid != uid {
            return Err(Refusal::new(
                Status::Misconfigured,
                address,
                "Mailbox owned by another user",
                format!("mailbox of {} belongs to uid {}, but zoha runs as uid {uid} and can deliver only as itself", account.name, account.uid),
            ));
        }
    }
    if let Some(host) = account.mailhost() {
        if !host.eq_ignore_ascii_case(&policy.hostname) {
            return Err(Refusal::new(
                Status::Misconfigured,
                address,
                "Mailbox is stored on another node",
                format!(
                    "mailhost of {} is {host}, this node is {}; route this mailbox to its node",
                    account.name, policy.hostname
                ),
            ));
        }
    }
    Ok(())
}

/// Checks the declared message size against the account's quota.
pub fn check_quota(policy: &Policy, target: &Target, declared_size: u64) -> Result<(), Refusal> {
    let address = &target.address;
    let account = &target.account;
    // Without a declared size, a mailbox already at its limit is still refused.
    match quota_verdict(policy, account, declared_size.max(1)) {
        Ok(quota::Verdict::Over { quota, usage }) => Err(Refusal::new(
            policy.over_quota_status(),
            address,
            "Mailbox is over quota",
            format!(
                "{} uses {} bytes in {} messages of quota {quota}; {declared_size} more bytes declared",
                account.maildir.display(),
                usage.bytes,
                usage.count
            ),
        )),
        Ok(_) => Ok(()),
        Err((status, detail)) => Err(Refusal::new(status, address, status_text(status), detail)),
    }
}

/// Returns the quota in effect and the usage of an existing Maildir, or
/// `None` when the mailbox has no quota (or no Maildir yet).
pub fn quota_usage(
    policy: &Policy,
    account: &Account,
) -> Result<Option<(String, quota::Usage)>, String> {
    match quota_verdict(policy, account, 0) {
        Ok(quota::Verdict::Unlimited) => Ok(None),
        Ok(quota::Verdict::Fits { quota, usage } | quota::Verdict::Over { quota, usage }) => {
            Ok(Some((quota, usage)))
        }
        Err((_, detail)) => Err(detail),
    }
}

/// Checks a message of `size` bytes against the quota, as the owner. A
/// Maildir that does not exist yet contains no mail: it is created at
/// delivery, not for a transaction that may never send data.
fn quota_verdict(
    policy: &Policy,
    account: &Account,
    size: u64,
) -> Result<quota::Verdict, (Status, String)> {
    let result = as_owner(policy, account, || {
        if crate::sys::stat_path_nofollow(&account.maildir)
            .is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT))
        {
            return Ok(quota::check_empty(account.quota.as_deref(), size));
        }
        let root = Maildir::open_root(&account.maildir, account.uid)?;
        quota::check(&root, account.quota.as_deref(), size)
    });
    match result {
        Ok(Ok(verdict)) => Ok(verdict),
        Ok(Err(e)) => Err((e.status, e.to_string())),
        Err(e) => Err((Status::StorageFailed, e.to_string())),
    }
}

/// Runs `work` with the owner's credentials (root mode) or as is.
fn as_owner<T>(
    policy: &Policy,
    account: &Account,
    work: impl FnOnce() -> T,
) -> Result<T, creds::CredentialError> {
    match policy.mode {
        Mode::Root => {
            let groups: Vec<u32> = account.groups.iter().copied().filter(|&g| g != 0).collect();
            let _acting = creds::act_as(account.uid, account.gid, &groups)?;
            Ok(work())
        }
        // Never work inside a mailbox as root, even if privileges were not dropped.
        Mode::SingleUser { .. } if crate::sys::geteuid() == 0 => Err(creds::CredentialError {
            operation: "deliver in single-user mode".into(),
            source: std::io::Error::other("the process still runs as root"),
        }),
        Mode::SingleUser { .. } => Ok(work()),
    }
}

/// The envelope data for the Received and Return-Path headers.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The MAIL FROM address as given, empty for `<>`.
    pub sender: String,
    /// The LHLO argument.
    pub lhlo: String,
    /// The peer as shown in Received: `[192.0.2.1]` or `local`.
    pub peer: String,
    /// The RFC 5322 date for Received.
    pub date: String,
}

/// The result of one recipient's delivery.
#[derive(Debug)]
pub struct Outcome {
    /// The reply for this recipient.
    pub reply: Reply,
    /// The stored file, when delivered.
    pub delivered: Option<Delivered>,
    /// Details for the log (the failed step, path and OS error).
    pub detail: Option<String>,
}

/// Builds the header lines Zoha adds before the message.
fn added_headers(policy: &Policy, envelope: &Envelope, address: &str, id: &str) -> Vec<u8> {
    format!(
        "Return-Path: <{sender}>\nDelivered-To: {address}\nReceived: from {lhlo} ({peer})\n\tby {host} (Zoha) with LMTP id {id}\n\tfor <{address}>; {date}\n",
        sender = envelope.sender,
        lhlo = envelope.lhlo,
        peer = envelope.peer,
        host = policy.hostname,
        date = envelope.date,
    )
    .into_bytes()
}

/// Chooses the folder: the spam folder for spam, else the `+detail` folder
/// when enabled. Returns the folder name without its dot and whether a
/// missing folder is created.
fn choose_folder(policy: &Policy, target: &Target, content: &Content) -> Option<(String, bool)> {
    if let (Some(spam), Some(value)) = (&policy.spam_header, &content.captured_header) {
        let value = String::from_utf8_lossy(value);
        let value = value.trim();
        let matches = value
            .as_bytes()
            .get(..spam.value.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(spam.value.as_bytes()));
        if matches && !policy.spam_folder.is_empty() {
            return Some((policy.spam_folder.trim_start_matches('.').to_string(), true));
        }
    }
    let create = match policy.detail_folders {
        DetailFolders::No => return None,
        DetailFolders::Yes => false,
        DetailFolders::Create => true,
    };
    let detail = target.recipient.detail.as_deref()?;
    folder::folder_for_detail(detail).map(|name| (name, create))
}

/// Stores one copy of `content` for `target`.
pub fn deliver(
    policy: &Policy,
    envelope: &Envelope,
    target: &Target,
    content: &mut Content,
) -> Outcome {
    let address = address_for_reply(&target.address);
    let folder = choose_folder(policy, target, content);
    let result = as_owner(policy, &target.account, || {
        store(policy, envelope, target, content, folder.as_ref())
    });
    let (reply, delivered, detail) = match result {
        Ok(Ok(d)) => (
            Status::Delivered.reply(format!("<{address}> {} Saved", d.id)),
            Some(d),
            None,
        ),
        Ok(Err(Stored::Over(detail))) => (
            policy
                .over_quota_status()
                .reply(format!("<{address}> Mailbox is over quota")),
            None,
            Some(detail),
        ),
        Ok(Err(Stored::Failed(e))) => (
            e.status
                .reply(format!("<{address}> {}", status_text(e.status))),
            None,
            Some(e.to_string()),
        ),
        Err(e) => (
            Status::StorageFailed.reply(format!("<{address}> Temporary failure, try again later")),
            None,
            Some(e.to_string()),
        ),
    };
    Outcome {
        reply,
        delivered,
        detail,
    }
}

enum Stored {
    Over(String),
    Failed(DeliveryError),
}

impl From<DeliveryError> for Stored {
    fn from(e: DeliveryError) -> Stored {
        Stored::Failed(e)
    }
}

/// Stores the message with the owner's credentials (the caller switched them).
fn store(
    policy: &Policy,
    envelope: &Envelope,
    target: &Target,
    content: &mut Content,
    folder: Option<&(String, bool)>,
) -> Result<Delivered, Stored> {
    let account = &target.account;
    let root = Maildir::open_root(&account.maildir, account.uid)?;

    // Check the quota with the real size before creating anything.
    // The name is chosen now, so the size checked is the size stored.
    let name = maildir::name::UniqueName::next(&policy.hostname);
    let headers = |id: &str| added_headers(policy, envelope, &target.address, id);
    let estimate = headers(&name.id).len() as u64 + content.spool.len();
    if let quota::Verdict::Over { quota, usage } =
        quota::check(&root, account.quota.as_deref(), estimate)?
    {
        return Err(Stored::Over(format!(
            "{} uses {} bytes in {} messages of quota {quota}; the message has {estimate} bytes",
            account.maildir.display(),
            usage.bytes,
            usage.count
        )));
    }

    // Deliver into the chosen folder, or INBOX when it does not exist.
    let folder_dir = match folder {
        Some((name, create)) => root.open_folder(name, *create)?,
        None => None,
    };
    let destination = folder_dir.as_ref().unwrap_or(&root);

    let delivered = maildir::deliver(
        destination,
        name,
        &policy.hostname,
        Message {
            headers: &headers,
            spool: &mut content.spool,
        },
        policy.fsync,
    )?;
    if let Err(e) = quota::record(&root, delivered.size) {
        log::warn!(
            "message {} stored, but the quota file was not updated: {e}",
            delivered.path.display()
        );
    }
    Ok(delivered)
}

/// Returns the reply text for a storage status.
pub fn status_text(status: Status) -> &'static str {
    match status {
        Status::DiskFull => "Insufficient disk space, try again later",
        Status::OverQuotaDefer | Status::OverQuotaReject => "Mailbox is over quota",
        Status::Misconfigured => "Mailbox is not set up correctly",
        Status::StorageFailed => "Temporary failure writing the mailbox, try again later",
        // Statuses that no storage step produces; listed so that a new
        // status must be placed here or above.
        Status::Greeting
        | Status::Closing
        | Status::Ok
        | Status::SenderOk
        | Status::RecipientOk
        | Status::Delivered
        | Status::CannotVerify
        | Status::StartData
        | Status::ServiceUnavailable
        | Status::Timeout
        | Status::TooManyErrors
        | Status::InternalError
        | Status::LookupFailed
        | Status::TooManyRecipients
        | Status::Unrecognized
        | Status::LineTooLong
        | Status::LhloRequired
        | Status::BadArguments
        | Status::BadSender
        | Status::BadRecipient
        | Status::NotImplemented
        | Status::BadSequence
        | Status::UnsupportedParameter
        | Status::UnknownUser
        | Status::MessageTooBig => "Temporary failure writing the mailbox, try again later",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(uid: u32) -> Account {
        Account {
            name: "alice@example.org".into(),
            uid,
            gid: uid,
            groups: vec![uid],
            home: "/h".into(),
            maildir: "/h/Maildir".into(),
            quota: None,
            options: Vec::new(),
            source: "test".into(),
        }
    }

    fn policy(mode: Mode) -> Policy {
        let mut p = Policy::new(&Config::defaults(), mode);
        p.hostname = "node-a".into();
        p
    }

    #[test]
    fn root_and_low_uids_refused() {
        let p = policy(Mode::Root);
        assert_eq!(
            check_account(&p, "a@x", &account(0))
                .unwrap_err()
                .reply
                .status,
            Status::Misconfigured
        );
        assert_eq!(
            check_account(&p, "a@x", &account(99))
                .unwrap_err()
                .reply
                .status,
            Status::Misconfigured
        );
        assert!(check_account(&p, "a@x", &account(100)).is_ok());
    }

    #[test]
    fn single_user_only_own_uid() {
        let p = policy(Mode::SingleUser { uid: 5000 });
        assert!(check_account(&p, "a@x", &account(5000)).is_ok());
        let r = check_account(&p, "a@x", &account(5001)).unwrap_err();
        assert_eq!(r.reply.status, Status::Misconfigured);
        assert!(
            r.detail.contains("5001") && r.detail.contains("5000"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn mailhost_elsewhere_refused() {
        let p = policy(Mode::Root);
        let mut a = account(5000);
        a.options = vec![("mailhost".into(), "node-b".into())];
        assert_eq!(
            check_account(&p, "a@x", &a).unwrap_err().reply.status,
            Status::Misconfigured
        );
        a.options = vec![("mailhost".into(), "NODE-A".into())];
        assert!(check_account(&p, "a@x", &a).is_ok());
    }

    #[test]
    fn headers_layout() {
        let p = policy(Mode::Root);
        let env = Envelope {
            sender: "".into(),
            lhlo: "mx.example".into(),
            peer: "[127.0.0.1]".into(),
            date: "Fri, 4 Dec 2026 20:16:24 +0000".into(),
        };
        let h =
            String::from_utf8(added_headers(&p, &env, "alice@example.org", "1.M2P3Q4")).unwrap();
        assert_eq!(
            h,
            "Return-Path: <>\nDelivered-To: alice@example.org\nReceived: from mx.example ([127.0.0.1])\n\tby node-a (Zoha) with LMTP id 1.M2P3Q4\n\tfor <alice@example.org>; Fri, 4 Dec 2026 20:16:24 +0000\n"
        );
    }
}
