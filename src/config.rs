//! Configuration file: parses `zoha.conf` (Postfix `main.cf` syntax) into [`Config`].
//!
//! Syntax: `name = value`; a line whose first non-blank character is `#` is a
//! comment; a line that starts with white space continues the previous
//! setting; `$name` and `${name}` expand to another setting's value. Lists
//! are separated by commas and/or white space, sizes are bytes with an
//! optional `k`, `M` or `G` suffix (powers of 1024), durations are seconds
//! with an optional `s`, `m`, `h` or `d` suffix.
//!
//! Exports [`Config`] with one typed field per setting, [`SETTINGS`] (every
//! name with its default, used by `-d`, `-n` and the documentation check),
//! and [`Config::load`] / [`Config::parse`].
//!
//! Failures: [`ConfigError`] names the file, the line, the setting and the
//! offending value, and states the accepted form: unknown names, duplicates,
//! bad values, continuation lines without a setting, undefined variables,
//! and contradictory settings.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default location of the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/zoha/zoha.conf";

/// Default path of courier-authlib's authdaemon socket on Debian.
pub const DEFAULT_AUTHDAEMON_SOCKET: &str = "/run/courier/authdaemon/socket";

/// One setting's name and default value, as written in the file.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Name as written in `zoha.conf`.
    pub name: &'static str,
    /// Default value in file syntax; `$hostname` expands at load time.
    pub default: &'static str,
}

const fn setting(name: &'static str, default: &'static str) -> Setting {
    Setting { name, default }
}

/// Every setting, with its default, in documentation order.
pub const SETTINGS: &[Setting] = &[
    setting("listen", "127.0.0.1:24"),
    setting("unix_socket_mode", "0660"),
    setting("unix_socket_user", ""),
    setting("unix_socket_group", ""),
    setting("hostname", ""),
    setting("user", ""),
    setting("workers", "100"),
    setting("userdb", "passwd"),
    setting("local_domains", "$hostname, localhost"),
    setting("recipient_delimiter", "+"),
    setting("max_message_size", "52428800"),
    setting("max_recipients", "1000"),
    setting("max_errors", "20"),
    setting("command_timeout", "300"),
    setting("data_timeout", "600"),
    setting("fsync", "yes"),
    setting("min_uid", "100"),
    setting("spool_directory", "/var/tmp"),
    setting("pid_file", "/run/zoha.pid"),
    setting("shutdown_timeout", "30"),
    setting("syslog_facility", "mail"),
    setting("syslog_socket", "/dev/log"),
    setting("log_level", "info"),
    setting("quota_reply", "defer"),
    setting("detail_folders", "no"),
    setting("spam_header", ""),
    setting("spam_folder", ".Junk"),
    setting("authdaemon_service", "login"),
    setting("authdaemon_timeout", "10"),
];

/// An address Zoha accepts connections on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address, IPv4 or IPv6.
    Tcp(SocketAddr),
    /// A UNIX-domain stream socket at an absolute path.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// One account source named in `userdb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The system user database (`getpwnam`).
    Passwd,
    /// A Courier userdb text file.
    File(PathBuf),
    /// courier-authlib's authdaemon socket.
    Authdaemon(PathBuf),
}

/// The reply for a mailbox over quota (`quota_reply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaReply {
    /// `452 4.2.2`: the sender retries.
    Defer,
    /// `552 5.2.2`: the sender bounces.
    Reject,
}

/// The folder choice for `user+detail` addresses (`detail_folders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailFolders {
    /// Always deliver to INBOX.
    No,
    /// Deliver to folder `.detail` when it exists, else INBOX.
    Yes,
    /// Deliver to folder `.detail`, creating it when missing.
    Create,
}

/// A header that marks a message as spam: its name and expected value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpamHeader {
    /// Field name, compared case-insensitively.
    pub name: String,
    /// Value prefix, compared case-insensitively after trimming white space.
    pub value: String,
}

/// The parsed configuration. Every field corresponds to one setting.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (empty for built-in defaults).
    pub path: PathBuf,
    /// `listen`
    pub listen: Vec<ListenAddr>,
    /// `unix_socket_mode`
    pub unix_socket_mode: u32,
    /// `unix_socket_user`
    pub unix_socket_user: String,
    /// `unix_socket_group`
    pub unix_socket_group: String,
    /// `hostname`
    pub hostname: String,
    /// `user`
    pub user: String,
    /// `workers`
    pub workers: usize,
    /// `userdb`
    pub userdb: Vec<SourceSpec>,
    /// `local_domains`, lowercased
    pub local_domains: Vec<String>,
    /// `recipient_delimiter`: each character is a delimiter
    pub recipient_delimiter: String,
    /// `max_message_size` in bytes
    pub max_message_size: u64,
    /// `max_recipients`
    pub max_recipients: usize,
    /// `max_errors`
    pub max_errors: u32,
    /// `command_timeout`
    pub command_timeout: Duration,
    /// `data_timeout`
    pub data_timeout: Duration,
    /// `fsync`
    pub fsync: bool,
    /// `min_uid`
    pub min_uid: u32,
    /// `spool_directory`
    pub spool_directory: PathBuf,
    /// `pid_file`
    pub pid_file: PathBuf,
    /// `shutdown_timeout`
    pub shutdown_timeout: Duration,
    /// `syslog_facility`
    pub syslog_facility: syslog::Facility,
    /// `syslog_socket`
    pub syslog_socket: PathBuf,
    /// `log_level`
    pub log_level: log::LevelFilter,
    /// `quota_reply`
    pub quota_reply: QuotaReply,
    /// `detail_folders`
    pub detail_folders: DetailFolders,
    /// `spam_header`
    pub spam_header: Option<SpamHeader>,
    /// `spam_folder`, with its leading dot
    pub spam_folder: String,
    /// `authdaemon_service`
    pub authdaemon_service: String,
    /// `authdaemon_timeout`
    pub authdaemon_timeout: Duration,
    /// Settings given in the file, in file order, as (name, expanded value).
    pub explicit: Vec<(String, String)>,
}

/// A configuration error, with everything needed to find and fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, or empty for errors not tied to a file.
    pub file: PathBuf,
    /// 1-based line number, or 0 when not tied to a line.
    pub line: usize,
    /// The problem and the accepted form.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.as_os_str().is_empty(), self.line) {
            (true, _) => write!(f, "{}", self.message),
            (false, 0) => write!(f, "{}: {}", self.file.display(), self.message),
            (false, line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A raw `name = value` entry with the line it started on.
#[derive(Debug, Clone)]
struct Entry {
    value: String,
    line: usize,
}

impl Config {
    /// Reads and parses the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            message: format!("cannot read the configuration file: {e}"),
        })?;
        let text = String::from_utf8(text).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            message: format!(
                "the file is not valid UTF-8 (at byte {})",
                e.utf8_error().valid_up_to()
            ),
        })?;
        Config::parse(path, &text)
    }

    /// Returns the configuration with every setting at its default.
    pub fn defaults() -> Config {
        Config::parse(Path::new(""), "").expect("built-in defaults are valid")
    }

    /// Parses configuration `text`; `path` is used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let entries = read_entries(path, text)?;
        let values = Values::expand(path, &entries)?;
        let mut config = values.build()?;
        config.path = path.to_path_buf();
        config.explicit = explicit_settings(&entries, &values);
        config.check_consistency()?;
        Ok(config)
    }

    /// Lists every setting whose value differs from its default, as `postconf -n` does.
    pub fn non_defaults(&self) -> Vec<(String, String)> {
        // Values are compared parsed, so `5m` equals the default `300`.
        let baseline = Config::defaults().comparable();
        self.explicit
            .iter()
            .filter(|(name, value)| {
                Config::parse(Path::new(""), &format!("{name} = {value}\n"))
                    .map_or(true, |alone| alone.comparable() != baseline)
            })
            .cloned()
            .collect()
    }

    /// Returns the parsed values as text, without the file name and the
    /// list of explicit settings, for comparing two configurations.
    fn comparable(&self) -> String {
        let mut copy = self.clone();
        copy.path = PathBuf::new();
        copy.explicit.clear();
        format!("{copy:?}")
    }

    fn check_consistency(&self) -> Result<(), ConfigError> {
        let error = |message: String| ConfigError {
            file: self.path.clone(),
            line: 0,
            message,
        };
        let mut seen = std::collections::HashSet::new();
        for addr in &self.listen {
            if !seen.insert(addr) {
                return Err(error(format!("listen: \"{addr}\" is given twice")));
            }
        }
        if self.spam_header.is_some() && self.spam_folder.is_empty() {
            return Err(error(
                "spam_header is set but spam_folder is empty; name a folder such as .Junk".into(),
            ));
        }
        if self.detail_folders != DetailFolders::No && self.recipient_delimiter.is_empty() {
            return Err(error(
                "detail_folders is on but recipient_delimiter is empty, so no address has a \
                 detail; set recipient_delimiter = + or detail_folders = no"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn explicit_settings(entries: &HashMap<String, Entry>, values: &Values) -> Vec<(String, String)> {
    let mut list: Vec<(usize, String, String)> = entries
        .iter()
        .map(|(name, entry)| (entry.line, name.clone(), values.get(name).to_string()))
        .collect();
    list.sort();
    list.into_iter()
        .map(|(_, name, value)| (name, value))
        .collect()
}

/// Splits the file into logical lines and collects `name = value` entries.
fn read_entries(path: &Path, text: &str) -> Result<HashMap<String, Entry>, ConfigError> {
    let mut logical: Vec<(usize, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            match logical.last_mut() {
                Some((_, current)) => {
                    current.push(' ');
                    current.push_str(trimmed);
                }
                None => {
                    return Err(ConfigError {
                        file: path.to_path_buf(),
                        line: number,
                        message: format!(
                            "continuation line \"{trimmed}\" without a setting before it; \
                             a setting starts at the beginning of a line"
                        ),
                    })
                }
            }
        } else {
            logical.push((number, line.trim_end().to_string()));
        }
    }

    let mut entries = HashMap::new();
    for (line, text) in logical {
        let error = |message: String| ConfigError {
            file: path.to_path_buf(),
            line,
            message,
        };
        let Some((name, value)) = text.split_once('=') else {
            return Err(error(format!("\"{text}\" is not of the form name = value")));
        };
        let name = name.trim();
        let value = value.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(error(format!(
                "invalid setting name \"{name}\"; names are lowercase letters, digits and underscores"
            )));
        }
        if !SETTINGS.iter().any(|s| s.name == name) {
            return Err(error(format!(
                "unknown setting \"{name}\" (value \"{value}\"); see zoha.conf(5)"
            )));
        }
        if let Some(first) = entries.get(name) {
            let first: &Entry = first;
            return Err(error(format!(
                "duplicate setting \"{name}\" (value \"{value}\"); it is already set on line {}",
                first.line
            )));
        }
        entries.insert(
            name.to_string(),
            Entry {
                value: value.to_string(),
                line,
            },
        );
    }
    Ok(entries)
}

/// Expanded values of every setting plus the line each came from (0 for defaults).
struct Values {
    path: PathBuf,
    values: HashMap<&'static str, (String, usize)>,
}

impl Values {
    fn expand(path: &Path, entries: &HashMap<String, Entry>) -> Result<Values, ConfigError> {
        let mut raw: HashMap<&'static str, (String, usize)> = HashMap::new();
        for s in SETTINGS {
            let (value, line) = match entries.get(s.name) {
                Some(e) => (e.value.clone(), e.line),
                None => (s.default.to_string(), 0),
            };
            raw.insert(s.name, (value, line));
        }
        if raw["hostname"].0.is_empty() {
            // A system name that is not a valid host name (or none at all)
            // must not make the defaults invalid; `hostname` can be set.
            let name = crate::sys::hostname()
                .ok()
                .filter(|n| parse_hostname(n).is_ok())
                .unwrap_or_else(|| "localhost".to_string());
            raw.insert("hostname", (name, 0));
        }
        let mut values = HashMap::new();
        for s in SETTINGS {
            let (value, line) = &raw[s.name];
            let expanded = expand_variables(path, *line, s.name, value, &raw, 0)?;
            values.insert(s.name, (expanded, *line));
        }
        Ok(Values {
            path: path.to_path_buf(),
            values,
        })
    }

    fn get(&self, name: &str) -> &str {
        self.values.get(name).map(|(v, _)| v.as_str()).unwrap_or("")
    }

    fn error(&self, name: &str, message: String) -> ConfigError {
        let (value, line) = self.values.get(name).cloned().unwrap_or_default();
        let file = if line == 0 {
            PathBuf::new()
        } else {
            self.path.clone()
        };
        ConfigError {
            file,
            line,
            message: format!("{name} = {value}: {message}"),
        }
    }

    fn parsed<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        parse(self.get(name)).map_err(|m| self.error(name, m))
    }

    fn build(&self) -> Result<Config, ConfigError> {
        Ok(Config {
            path: PathBuf::new(),
            listen: self.parsed("listen", parse_listen_list)?,
            unix_socket_mode: self.parsed("unix_socket_mode", parse_mode)?,
            unix_socket_user: self.parsed("unix_socket_user", parse_name)?,
            unix_socket_group: self.parsed("unix_socket_group", parse_name)?,
            hostname: self.parsed("hostname", parse_hostname)?,
            user: self.parsed("user", parse_name)?,
            workers: self.parsed("workers", |v| parse_count(v, 1, 100_000))?,
            userdb: self.parsed("userdb", parse_sources)?,
            local_domains: split_list(self.get("local_domains"))
                .map(str::to_ascii_lowercase)
                .collect(),
            recipient_delimiter: self.parsed("recipient_delimiter", parse_delimiter)?,
            max_message_size: self.parsed("max_message_size", parse_size)?,
            max_recipients: self.parsed("max_recipients", |v| parse_count(v, 1, 1_000_000))?,
            max_errors: self.parsed("max_errors", |v| {
                parse_count(v, 1, 1_000_000).map(|n| n as u32)
            })?,
            command_timeout: self.parsed("command_timeout", parse_duration)?,
            data_timeout: self.parsed("data_timeout", parse_duration)?,
            fsync: self.parsed("fsync", parse_bool)?,
            min_uid: self.parsed("min_uid", |v| {
                parse_count(v, 1, u32::MAX as usize).map(|n| n as u32)
            })?,
            spool_directory: self.parsed("spool_directory", parse_absolute_path)?,
            pid_file: self.parsed("pid_file", parse_absolute_path)?,
            shutdown_timeout: self.parsed("shutdown_timeout", parse_duration)?,
            syslog_facility: self.parsed("syslog_facility", parse_facility)?,
            syslog_socket: self.parsed("syslog_socket", parse_absolute_path)?,
            log_level: self.parsed("log_level", parse_log_level)?,
            quota_reply: self.parsed("quota_reply", parse_quota_reply)?,
            detail_folders: self.parsed("detail_folders", parse_detail_folders)?,
            spam_header: self.parsed("spam_header", parse_spam_header)?,
            spam_folder: self.parsed("spam_folder", parse_folder_setting)?,
            authdaemon_service: self.parsed("authdaemon_service", parse_service)?,
            authdaemon_timeout: self.parsed("authdaemon_timeout", parse_duration)?,
            explicit: Vec::new(),
        })
    }
}

/// Expands `$name` and `${name}` references to other settings.
fn expand_variables(
    path: &Path,
    line: usize,
    setting: &str,
    value: &str,
    raw: &HashMap<&'static str, (String, usize)>,
    depth: usize,
) -> Result<String, ConfigError> {
    let error = |message: String| ConfigError {
        file: if line == 0 {
            PathBuf::new()
        } else {
            path.to_path_buf()
        },
        line,
        message: format!("{setting} = {value}: {message}"),
    };
    if depth > 8 {
        return Err(error(
            "variables nest more than 8 levels deep (a loop?)".into(),
        ));
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => return Err(error("\"${\" without a closing \"}\"".into())),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        let Some((target, _)) = raw.get(name).cloned() else {
            return Err(error(format!(
                "undefined variable \"${name}\"; only setting names can be used"
            )));
        };
        out.push_str(&expand_variables(
            path,
            line,
            setting,
            &target,
            raw,
            depth + 1,
        )?);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits a list value on commas and white space, dropping empty items.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

fn parse_listen_list(value: &str) -> Result<Vec<ListenAddr>, String> {
    let list: Result<Vec<_>, _> = split_list(value).map(parse_listen).collect();
    let list = list?;
    if list.is_empty() {
        return Err("at least one address is needed: host:port, [ipv6]:port or unix:/path".into());
    }
    Ok(list)
}

/// Parses one `listen` item: `host:port`, `[ipv6]:port` or `unix:/path`.
pub fn parse_listen(item: &str) -> Result<ListenAddr, String> {
    if let Some(path) = item.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(format!(
                "\"{item}\": a UNIX socket path must be absolute, as in unix:/run/zoha/lmtp"
            ));
        }
        return Ok(ListenAddr::Unix(path));
    }
    let bad = || {
        format!("\"{item}\" is not host:port, [ipv6]:port or unix:/path (host is an IP address, * or localhost)")
    };
    let (host, port) = item.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip: IpAddr = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse().map_err(|_| bad())?
    } else if host == "*" {
        IpAddr::from([0, 0, 0, 0])
    } else if host.eq_ignore_ascii_case("localhost") {
        IpAddr::from([127, 0, 0, 1])
    } else {
        let ip: std::net::Ipv4Addr = host.parse().map_err(|_| bad())?;
        IpAddr::V4(ip)
    };
    Ok(ListenAddr::Tcp(SocketAddr::new(ip, port)))
}

fn parse_mode(value: &str) -> Result<u32, String> {
    let ok = (3..=4).contains(&value.len()) && value.bytes().all(|b| (b'0'..=b'7').contains(&b));
    if !ok {
        return Err("expected an octal file mode such as 0660".into());
    }
    u32::from_str_radix(value, 8).map_err(|e| e.to_string())
}

fn parse_name(value: &str) -> Result<String, String> {
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == '/')
    {
        return Err("expected a single user or group name".into());
    }
    Ok(value.to_string())
}

fn parse_hostname(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    if !ok {
        return Err("expected a host name of letters, digits, dots and hyphens".into());
    }
    Ok(value.to_string())
}

/// Parses a count between `min` and `max`.
fn parse_count(value: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = value
        .parse()
        .map_err(|_| format!("expected a whole number from {min} to {max}"))?;
    if n < min || n > max {
        return Err(format!("expected a whole number from {min} to {max}"));
    }
    Ok(n)
}

fn parse_sources(value: &str) -> Result<Vec<SourceSpec>, String> {
    let mut list = Vec::new();
    for item in split_list(value) {
        let spec = if item == "passwd" {
            SourceSpec::Passwd
        } else if item == "authdaemon" {
            SourceSpec::Authdaemon(PathBuf::from(DEFAULT_AUTHDAEMON_SOCKET))
        } else if let Some(path) = item.strip_prefix("file:") {
            SourceSpec::File(absolute(item, path)?)
        } else if let Some(path) = item.strip_prefix("authdaemon:") {
            SourceSpec::Authdaemon(absolute(item, path)?)
        } else {
            return Err(format!(
                "\"{item}\" is not passwd, file:/path or authdaemon:/path"
            ));
        };
        list.push(spec);
    }
    if list.is_empty() {
        return Err(
            "at least one account source is needed: passwd, file:/path or authdaemon:/path".into(),
        );
    }
    Ok(list)
}

fn absolute(item: &str, path: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(format!("\"{item}\": the path must be absolute"));
    }
    Ok(path)
}

fn parse_delimiter(value: &str) -> Result<String, String> {
    if value
        .chars()
        .any(|c| c.is_alphanumeric() || c.is_whitespace() || c == '@' || c == '.' || c == '"')
    {
        return Err("expected punctuation characters such as + or -, or an empty value".into());
    }
    Ok(value.to_string())
}

/// Parses a size in bytes with an optional k, M or G suffix (powers of 1024).
pub fn parse_size(value: &str) -> Result<u64, String> {
    let bad =
        || "expected a size in bytes, optionally with a k, M or G suffix, such as 50M".to_string();
    let (digits, factor) = match value.as_bytes().last() {
        Some(b'k') | Some(b'K') => (&value[..value.len() - 1], 1u64 << 10),
        Some(b'm') | Some(b'M') => (&value[..value.len() - 1], 1 << 20),
        Some(b'g') | Some(b'G') => (&value[..value.len() - 1], 1 << 30),
        _ => (value, 1),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(factor).filter(|&n| n > 0).ok_or_else(bad)
}

/// Longest duration accepted: poll(2) waits at most 2^31 - 1 ms (24.8
/// days), and much longer values would overflow time arithmetic.
const MAX_DURATION_SECONDS: u64 = 24 * 86400;

/// Parses a duration in seconds with an optional s, m, h or d suffix.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let bad = || {
        "expected a duration in seconds from 1 to 24 days, optionally with an s, m, h or d \
         suffix, such as 5m"
            .to_string()
    };
    let (digits, factor) = match value.as_bytes().last() {
        Some(b's') => (&value[..value.len() - 1], 1u64),
        Some(b'm') => (&value[..value.len() - 1], 60),
        Some(b'h') => (&value[..value.len() - 1], 3600),
        Some(b'd') => (&value[..value.len() - 1], 86400),
        _ => (value, 1),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs = n
        .checked_mul(factor)
        .filter(|&n| n > 0 && n <= MAX_DURATION_SECONDS)
        .ok_or_else(bad)?;
    Ok(Duration::from_secs(secs))
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("expected yes or no".into()),
    }
}

fn parse_absolute_path(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    if !path.is_absolute() {
        return Err("expected an absolute path".into());
    }
    Ok(path)
}

fn parse_facility(value: &str) -> Result<syslog::Facility, String> {
    value
        .parse()
        .map_err(|_| "expected a syslog facility such as mail, daemon or local0 to local7".into())
}

fn parse_log_level(value: &str) -> Result<log::LevelFilter, String> {
    value
        .parse()
        .map_err(|_| "expected error, warn, info, debug or trace".into())
}

fn parse_quota_reply(value: &str) -> Result<QuotaReply, String> {
    match value {
        "defer" => Ok(QuotaReply::Defer),
        "reject" => Ok(QuotaReply::Reject),
        _ => Err("expected defer (452 4.2.2) or reject (552 5.2.2)".into()),
    }
}

fn parse_detail_folders(value: &str) -> Result<DetailFolders, String> {
    match value {
        "no" => Ok(DetailFolders::No),
        "yes" => Ok(DetailFolders::Yes),
        "create" => Ok(DetailFolders::Create),
        _ => Err("expected no, yes or create".into()),
    }
}

fn parse_spam_header(value: &str) -> Result<Option<SpamHeader>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let bad = || "expected \"Name: value\", such as X-Spam-Flag: YES".to_string();
    let (name, expected) = value.split_once(':').ok_or_else(bad)?;
    let name = name.trim();
    let expected = expected.trim();
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if !name_ok || expected.is_empty() {
        return Err(bad());
    }
    Ok(Some(SpamHeader {
        name: name.to_string(),
        value: expected.to_string(),
    }))
}

fn parse_folder_setting(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    let name = value.strip_prefix('.').unwrap_or(value);
    crate::maildir::folder::validate_folder_name(name)
        .map_err(|e| format!("{e}; expected a Maildir++ folder such as .Junk"))?;
    if name == crate::maildir::folder::TRASH {
        return Err(
            "the quota does not count .Trash, so spam there would be unlimited; use .Junk".into(),
        );
    }
    Ok(format!(".{name}"))
}

fn parse_service(value: &str) -> Result<String, String> {
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("expected a service name of letters, digits, - and _".into());
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/zoha/zoha.conf"), text)
    }

    #[test]
    fn defaults_match_design() {
        let c = Config::defaults();
        assert_eq!(
            c.listen,
            vec![ListenAddr::Tcp("127.0.0.1:24".parse().unwrap())]
        );
        assert_eq!(c.unix_socket_mode, 0o660);
        assert_eq!(c.workers, 100);
        assert_eq!(c.userdb, vec![SourceSpec::Passwd]);
        assert_eq!(c.recipient_delimiter, "+");
        assert_eq!(c.max_message_size, 52_428_800);
        assert_eq!(c.max_recipients, 1000);
        assert_eq!(c.command_timeout, Duration::from_secs(300));
        assert_eq!(c.data_timeout, Duration::from_secs(600));
        assert!(c.fsync);
        assert_eq!(c.min_uid, 100);
        assert_eq!(
            c.local_domains,
            vec![c.hostname.to_ascii_lowercase(), "localhost".to_string()]
        );
    }

    #[test]
    fn continuation_and_comments() {
        let c = parse("# comment\nlisten = 127.0.0.1:2424,\n    # inside\n  unix:/run/zoha.sock\n\nworkers=4\n").unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.listen[1], ListenAddr::Unix("/run/zoha.sock".into()));
        assert_eq!(c.workers, 4);
    }

    #[test]
    fn ipv6_listen() {
        let c = parse("listen = [::1]:24 127.0.0.1:25").unwrap();
        assert_eq!(c.listen[0], ListenAddr::Tcp("[::1]:24".parse().unwrap()));
    }

    #[test]
    fn unknown_setting_names_line_and_value() {
        let e = parse("workers = 4\nfoo = bar\n").unwrap_err();
        assert_eq!(e.line, 2);
        let text = e.to_string();
        assert!(text.starts_with("/etc/zoha/zoha.conf:2:"), "{text}");
        assert!(text.contains("foo"), "{text}");
        assert!(text.contains("bar"), "{text}");
    }

    #[test]
    fn duplicate_setting_is_error() {
        let e = parse("workers = 4\nworkers = 5\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn bad_value_names_value_and_form() {
        let e = parse("\n\nmax_message_size = 10X\n").unwrap_err();
        assert_eq!(e.line, 3);
        let text = e.to_string();
        assert!(text.contains("10X"), "{text}");
        assert!(text.contains("k, M or G"), "{text}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("10k").unwrap(), 10240);
        assert_eq!(parse_size("50M").unwrap(), 52_428_800);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert!(parse_size("0").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("5x").is_err());
        assert_eq!(
            parse_duration("24d").unwrap(),
            Duration::from_secs(24 * 86400)
        );
        assert!(parse_duration("25d").is_err());
        assert!(parse_duration("18446744073709551615").is_err());
    }

    #[test]
    fn variable_expansion() {
        let c = parse("hostname = mx1.example.org\nlocal_domains = $hostname, ${hostname}.test\n")
            .unwrap();
        assert_eq!(
            c.local_domains,
            vec!["mx1.example.org", "mx1.example.org.test"]
        );
    }

    #[test]
    fn undefined_variable_is_error() {
        let e = parse("local_domains = $nosuch\n").unwrap_err();
        assert!(e.to_string().contains("$nosuch"), "{e}");
    }

    #[test]
    fn continuation_without_setting() {
        let e = parse("  127.0.0.1:24\n").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn relative_unix_socket_rejected() {
        let e = parse("listen = unix:run/zoha\n").unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
    }

    #[test]
    fn listen_twice_rejected() {
        assert!(parse("listen = 127.0.0.1:24, 127.0.0.1:24\n").is_err());
    }

    #[test]
    fn userdb_sources() {
        let c = parse("userdb = file:/etc/zoha/userdb passwd authdaemon\n").unwrap();
        assert_eq!(
            c.userdb,
            vec![
                SourceSpec::File("/etc/zoha/userdb".into()),
                SourceSpec::Passwd,
                SourceSpec::Authdaemon(DEFAULT_AUTHDAEMON_SOCKET.into())
            ]
        );
        assert!(parse("userdb = ldap:foo\n").is_err());
        assert!(parse("userdb = file:relative\n").is_err());
    }

    #[test]
    fn non_defaults_lists_only_changes() {
        let c = parse("workers = 100\nmax_recipients = 50\n").unwrap();
        assert_eq!(
            c.non_defaults(),
            vec![("max_recipients".to_string(), "50".to_string())]
        );
    }

    #[test]
    fn spam_header_parsed() {
        let c = parse("spam_header = X-Spam-Flag: YES\n").unwrap();
        assert_eq!(
            c.spam_header,
            Some(SpamHeader {
                name: "X-Spam-Flag".into(),
                value: "YES".into()
            })
        );
        assert_eq!(c.spam_folder, ".Junk");
        assert!(parse("spam_header = nocolon\n").is_err());
    }

    #[test]
    fn spam_folder_validated() {
        assert!(parse("spam_folder = ../x\n").is_err());
        assert_eq!(parse("spam_folder = Spam\n").unwrap().spam_folder, ".Spam");
    }
}
