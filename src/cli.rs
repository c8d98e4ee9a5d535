//! Command line: parses the options with getopts and runs the chosen action.
//!
//! `zoha [-c FILE] [-f] [-i] [-t] [-n] [-d] [-l ADDRESS] [-V] [-h]`; see
//! [`usage`]. Exit status: 0 success, 1 bad configuration or failed check,
//! 2 usage error.
//!
//! Failures: usage errors (unknown options, missing arguments, conflicting
//! actions) return exit status 2 with a message on standard error.

use std::io::Write;
use std::path::PathBuf;

use crate::account::{check_local_part, Accounts, Lookup, Recipient};
use crate::config::{Config, DEFAULT_CONFIG_PATH, SETTINGS};
use crate::daemon::{self, StartOptions};
use crate::delivery::{self, Policy, Refusal, Target};
use crate::logging::{self, LogSettings};
use crate::status::Status;

/// Exit status for a bad configuration or a failed check.
pub const EXIT_CONFIG: i32 = 1;
/// Exit status for a usage error.
pub const EXIT_USAGE: i32 = 2;

/// The action requested on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run the daemon.
    Serve,
    /// Serve one session on standard input and output.
    Inetd,
    /// Check the configuration and account sources.
    Check,
    /// Print settings that differ from their defaults.
    NonDefaults,
    /// Print every setting with its default.
    Defaults,
    /// Look an address up.
    Lookup(String),
    /// Print the version.
    Version,
    /// Print usage.
    Help,
}

/// Parsed command-line options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The chosen action.
    pub action: Action,
    /// `-c FILE`
    pub config_path: PathBuf,
    /// `-f`
    pub foreground: bool,
}

/// Returns the usage text.
pub fn usage() -> String {
    format!(
        "usage: zoha [-c FILE] [-f] [-i] [-t] [-n] [-d] [-l ADDRESS] [-V] [-h]
  -c FILE     configuration file (default {DEFAULT_CONFIG_PATH})
  -f          stay in the foreground and log to standard error as well
  -i          serve one LMTP session on standard input and output (inetd)
  -t          check the configuration and account sources, then exit
  -n          print the settings that differ from their defaults
  -d          print every setting with its default value
  -l ADDRESS  show what a delivery to ADDRESS would do, then exit
  -V          print the version
  -h          print this help
"
    )
}

/// Parses `args` (without the program name).
pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut opts = getopts::Options::new();
    opts.optopt("c", "", "configuration file", "FILE");
    opts.optflag("f", "", "foreground");
    opts.optflag("i", "", "inetd mode");
    opts.optflag("t", "", "check");
    opts.optflag("n", "", "non-default settings");
    opts.optflag("d", "", "default settings");
    opts.optopt("l", "", "look up an address", "ADDRESS");
    opts.optflag("V", "", "version");
    opts.optflag("h", "", "help");
    let matches = opts.parse(args).map_err(|e| e.to_string())?;
    if !matches.free.is_empty() {
        return Err(format!("unexpected argument \"{}\"", matches.free[0]));
    }
    let mut actions = Vec::new();
    for (flag, action) in [
        ("i", Action::Inetd),
        ("t", Action::Check),
        ("n", Action::NonDefaults),
        ("d", Action::Defaults),
        ("V", Action::Version),
        ("h", Action::Help),
    ] {
        if matches.opt_present(flag) {
            actions.push(action);
        }
    }
    if let Some(address) = matches.opt_str("l") {
        actions.push(Action::Lookup(address));
    }
    if actions.len() > 1 {
        return Err("choose only one of -i, -t, -n, -d, -l, -V and -h".into());
    }
    Ok(Options {
        action: actions.pop().unwrap_or(Action::Serve),
        config_path: matches
            .opt_str("c")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
        foreground: matches.opt_present("f"),
    })
}

/// Runs the program; returns the exit status.
pub fn main_with_args(args: &[String]) -> i32 {
    let options = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("zoha: {e}\n{}", usage());
            return EXIT_USAGE;
        }
    };
    match options.action {
        Action::Help => {
            print!("{}", usage());
            return 0;
        }
        Action::Version => {
            println!("zoha {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Action::Defaults => {
            let defaults = Config::defaults();
            for s in SETTINGS {
                let value = if s.name == "hostname" {
                    defaults.hostname.clone()
                } else {
                    s.default.to_string()
                };
                println!("{} = {value}", s.name);
            }
            return 0;
        }
        _ => {}
    }
    daemon::ensure_standard_descriptors();
    if options.action == Action::Inetd {
        daemon::silence_stderr();
    }
    let config = match Config::load(&options.config_path) {
        Ok(c) => c,
        Err(e) if options.action == Action::Inetd => return fail_inetd(&e.to_string()),
        Err(e) => {
            eprintln!("zoha: {e}");
            return EXIT_CONFIG;
        }
    };
    let result = match options.action.clone() {
        Action::NonDefaults => {
            for (name, value) in config.non_defaults() {
                println!("{name} = {value}");
            }
            Ok(0)
        }
        Action::Check => Ok(check(&config)),
        Action::Lookup(address) => Ok(lookup(&config, &address)),
        Action::Inetd => {
            return match start_logging(&config, false).and_then(|()| daemon::run_inetd(config)) {
                Ok(code) => code,
                Err(e) => fail_inetd(&e),
            };
        }
        _ => serve(&options, config),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e}");
            // With -f the log line already went to standard error.
            if !logging::stderr_enabled() {
                eprintln!("zoha: {e}");
            }
            EXIT_CONFIG
        }
    }
}

fn start_logging(config: &Config, stderr: bool) -> Result<(), String> {
    logging::init(LogSettings {
        socket: config.syslog_socket.clone(),
        facility: config.syslog_facility,
        stderr,
        level: config.log_level,
    })
}

/// Ends an inetd session that cannot start: standard output and error are
/// the client's connection, so the client gets one `421` reply and the
/// error goes to syslog only.
fn fail_inetd(error: &str) -> i32 {
    let _ = start_logging(&Config::defaults(), false);
    log::error!("inetd session not started: {error}");
    let reply = Status::ServiceUnavailable
        .reply("Service not available (configuration error), try again later");
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{reply}\r\n");
    let _ = out.flush();
    EXIT_CONFIG
}

fn serve(options: &Options, config: Config) -> Result<i32, String> {
    // Under systemd, standard error and syslog both end in the journal, so
    // lines would appear twice. JOURNAL_STREAM is set when standard error
    // is the journal.
    let stderr = options.foreground && std::env::var_os("JOURNAL_STREAM").is_none();
    start_logging(&config, stderr)?;
    let mut inherited = daemon::inherited_sockets();
    if let Some(sockets) = inherited.as_mut() {
        // Accept=yes: one connected socket, not a listener.
        let connected = |fd: &std::os::fd::OwnedFd| {
            !crate::sys::is_listening_socket(std::os::fd::AsRawFd::as_raw_fd(fd))
        };
        if sockets.len() == 1 && connected(&sockets[0].0) {
            let (socket, _) = sockets.remove(0);
            return daemon::run_accepted(config, socket);
        }
    }
    let start = StartOptions {
        config_path: options.config_path.clone(),
        foreground: options.foreground,
    };
    daemon::run(&start, config, inherited)
}

/// `-t`: checks everything that can be checked without serving.
fn check(config: &Config) -> i32 {
    let mut problems = Vec::new();
    if let Err(e) = daemon::resolve_user(config) {
        problems.push(e);
    }
    if let Err(e) = daemon::check_spool_directory(config) {
        problems.push(e);
    }
    problems.extend(Accounts::from_config(config).check());
    if problems.is_empty() {
        println!("zoha: {}: configuration OK", config.path.display());
        if !config.fsync {
            println!("zoha: warning: fsync = no: deliveries will not be durable");
        }
        if !config.syslog_socket.exists() {
            println!(
                "zoha: warning: syslog_socket {} does not exist; without -f nothing is logged \
                 until a syslog daemon creates it",
                config.syslog_socket.display()
            );
        }
        return 0;
    }
    for p in &problems {
        eprintln!("zoha: {p}");
    }
    EXIT_CONFIG
}

/// `-l ADDRESS`: prints what a delivery would do.
fn lookup(config: &Config, address: &str) -> i32 {
    let target = match find_target(config, address) {
        Ok(target) => target,
        Err(code) => return code,
    };
    print_account(&target.account);
    // Take the daemon's own credentials first: with `user` set and started
    // as root, the quota check would otherwise touch the Maildir as root.
    let mode = match daemon::enter_mode(config) {
        Ok(mode) => mode,
        Err(e) => {
            println!("verdict: cannot take the daemon's credentials: {e}");
            return EXIT_CONFIG;
        }
    };
    let policy = Policy::new(config, mode);
    print_folder(config, &target);
    if let Err(r) = delivery::check_account(&policy, &target.address, &target.account) {
        return print_refusal(&r);
    }
    match delivery::quota_usage(&policy, &target.account) {
        Ok(Some((quota, usage))) => {
            println!(
                "quota in use: {} bytes in {} messages of {quota}",
                usage.bytes, usage.count
            )
        }
        Ok(None) => println!("quota in use: no quota"),
        Err(e) => println!("quota in use: unknown ({e})"),
    }
    match delivery::check_quota(&policy, &target, 1) {
        Ok(()) => {
            println!("verdict: deliver");
            0
        }
        Err(r) => print_refusal(&r),
    }
}

/// Parses and looks `address` up as RCPT does, printing each step; on a
/// refusal, prints the verdict and returns the exit status.
fn find_target(config: &Config, address: &str) -> Result<Target, i32> {
    let arg = if address.starts_with('<') {
        address.to_string()
    } else {
        format!("<{address}>")
    };
    let mailbox = match crate::address::parse_forward_path(&arg) {
        Ok((m, _)) => m,
        Err(e) => {
            let reply = Status::BadRecipient.reply(format!("Bad recipient address syntax: {e}"));
            println!("address: {address}\nverdict: {reply}");
            return Err(EXIT_CONFIG);
        }
    };
    let given = mailbox.as_given.clone();
    println!("address: {given}");
    if let Err(why) = check_local_part(&mailbox.local_part) {
        let refusal = Refusal::new(Status::UnknownUser, &given, "User unknown", why.to_string());
        return Err(print_refusal(&refusal));
    }
    let recipient = Recipient::new(
        &mailbox.local_part,
        &mailbox.domain,
        &config.recipient_delimiter,
    );
    let detail = recipient
        .detail
        .as_ref()
        .map(|d| format!(" (detail \"{d}\")"));
    println!("lookup: {recipient}{}", detail.unwrap_or_default());
    let refusal = match Accounts::from_config(config).lookup(&recipient) {
        Lookup::Found(account) => {
            return Ok(Target {
                address: given,
                recipient,
                account: *account,
            })
        }
        Lookup::Unknown => {
            let detail = format!("no account for {recipient}");
            Refusal::new(Status::UnknownUser, &given, "User unknown", detail)
        }
        Lookup::Failed(why) => Refusal::new(
            Status::LookupFailed,
            &given,
            "Temporary lookup failure",
            why,
        ),
    };
    Err(print_refusal(&refusal))
}

/// Prints the reply RCPT would get, with the details the log would show.
fn print_refusal(refusal: &Refusal) -> i32 {
    println!("verdict: {} ({})", refusal.reply, refusal.detail);
    EXIT_CONFIG
}

fn print_account(account: &crate::account::Account) {
    println!("source: {}", account.source);
    println!("account: {}", account.name);
    println!("uid: {}", account.uid);
    println!("gid: {}", account.gid);
    println!("home: {}", account.home.display());
    println!("maildir: {}", account.maildir.display());
    println!(
        "quota: {}",
        account.quota.as_deref().unwrap_or("none in the account")
    );
    println!(
        "mailhost: {}",
        account
            .mailhost()
            .unwrap_or("this node (no mailhost option)")
    );
    if !account.options.is_empty() {
        let text: Vec<String> = account
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("options: {}", text.join(","));
    }
}

fn print_folder(config: &Config, target: &Target) {
    use crate::config::DetailFolders;
    let folder = match (config.detail_folders, target.recipient.detail.as_deref()) {
        (DetailFolders::No, _) | (_, None) => None,
        (mode, Some(detail)) => {
            crate::maildir::folder::folder_for_detail(detail).map(|f| (f, mode))
        }
    };
    match folder {
        Some((name, DetailFolders::Create)) => println!("folder: .{name} (created when missing)"),
        Some((name, _)) => println!("folder: .{name} (INBOX when it does not exist)"),
        None => println!("folder: INBOX"),
    }
    if let Some(spam) = &config.spam_header {
        println!(
            "spam: messages with \"{}: {}\" go to {}",
            spam.name, spam.value, config.spam_folder
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_action_serves() {
        let o = parse_args(&[]).unwrap();
        assert_eq!(o.action, Action::Serve);
        assert_eq!(o.config_path, PathBuf::from(DEFAULT_CONFIG_PATH));
        assert!(!o.foreground);
    }

    #[test]
    fn flags_and_config() {
        let o = parse_args(&args(&["-f", "-c", "/tmp/z.conf"])).unwrap();
        assert!(o.foreground);
        assert_eq!(o.config_path, PathBuf::from("/tmp/z.conf"));
        assert_eq!(
            parse_args(&args(&["-l", "a@b"])).unwrap().action,
            Action::Lookup("a@b".into())
        );
        assert_eq!(parse_args(&args(&["-t"])).unwrap().action, Action::Check);
    }

    #[test]
    fn usage_errors() {
        assert!(parse_args(&args(&["-x"])).is_err());
        assert!(parse_args(&args(&["-c"])).is_err());
        assert!(parse_args(&args(&["-t", "-n"])).is_err());
        assert!(parse_args(&args(&["extra"])).is_err());
    }
}
