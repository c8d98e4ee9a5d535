//! The `zoha` command line: `-t` on good and bad configurations, `-n`,
//! `-l`, `-V`, `-h`, and usage errors, with their exit statuses (0 success,
//! 1 bad configuration or failed check, 2 usage error) and messages.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::Setup;

/// Runs `zoha` with `args` and returns its output.
fn run_zoha(args: &[&str]) -> Output {
    Command::new(common::ZOHA)
        .args(args)
        .output()
        .expect("run zoha")
}

/// Runs `zoha -t -c config`.
fn check_config(config: &Path) -> Output {
    run_zoha(&["-t", "-c", config.to_str().expect("UTF-8 config path")])
}

/// Runs `zoha -t -c config`, asserts exit status 1 and returns standard
/// error. `case` completes the failure message "exit status of -t".
#[track_caller]
fn check_config_fails(config: &Path, case: &str) -> String {
    let output = check_config(config);
    assert_eq!(output.status.code(), Some(1), "exit status of -t {case}");
    stderr(&output)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes a setup whose configuration ends with the `extra` lines and
/// returns it with the 1-based line number of the first extra line.
fn setup_with_extra(tag: &str, extra: &str) -> (Setup, usize) {
    let mut setup = Setup::new(tag);
    setup.add_account("alice@example.org");
    setup.write(extra);
    let first_extra_line = setup.config_text("").lines().count() + 1;
    (setup, first_extra_line)
}

#[test]
fn check_good_config_exits_zero() {
    let (setup, _) = setup_with_extra(
        "cli-good",
        "# comment lines and continuation lines are accepted\nlocal_domains = example.org,\n  localhost\nmax_message_size = 10M\n",
    );
    let output = check_config(&setup.config_path());
    assert_eq!(
        output.status.code(),
        Some(0),
        "exit status of -t on a good configuration; stderr: {}",
        stderr(&output)
    );
    assert!(
        stdout(&output).contains("configuration OK"),
        "-t output on success: {}",
        stdout(&output)
    );
}

#[test]
fn check_bad_value_names_line() {
    let (setup, line) = setup_with_extra("cli-bad-value", "max_message_size = 12x\n");
    let message = check_config_fails(&setup.config_path(), "on a bad value");
    let location = format!("{}:{line}:", setup.config_path().display());
    assert!(
        message.contains(&location),
        "the error names {location}: {message}"
    );
    assert!(
        message.contains("max_message_size"),
        "the error names the setting: {message}"
    );
    assert!(
        message.contains("12x"),
        "the error names the value: {message}"
    );
}

#[test]
fn check_unknown_setting_names_line() {
    let (setup, line) = setup_with_extra("cli-unknown", "frobnicate = 7\n");
    let message = check_config_fails(&setup.config_path(), "on an unknown setting");
    let location = format!("{}:{line}:", setup.config_path().display());
    assert!(
        message.contains(&location),
        "the error names {location}: {message}"
    );
    assert!(
        message.contains("frobnicate"),
        "the error names the setting: {message}"
    );
}

#[test]
fn check_duplicate_setting_names_line() {
    let (setup, line) = setup_with_extra("cli-duplicate", "workers = 5\nworkers = 6\n");
    let message = check_config_fails(&setup.config_path(), "on a duplicate setting");
    let location = format!("{}:{}:", setup.config_path().display(), line + 1);
    assert!(
        message.contains(&location),
        "the error names the second line, {location}: {message}"
    );
    assert!(
        message.contains("workers"),
        "the error names the setting: {message}"
    );
}

#[test]
fn check_missing_userdb_fails() {
    let mut setup = Setup::new("cli-no-userdb");
    setup.add_account("alice@example.org");
    setup.write("");
    fs::remove_file(setup.userdb_path()).expect("remove the userdb file");
    let message = check_config_fails(&setup.config_path(), "with a missing userdb file");
    let path = setup.userdb_path().display().to_string();
    assert!(message.contains(&path), "the error names {path}: {message}");
}

#[test]
fn check_broken_userdb_line_fails() {
    let mut setup = Setup::new("cli-broken-userdb");
    setup.add_account("alice@example.org");
    setup.add_userdb_line("broken@example.org\tuid=abc|gid=1|home=/x");
    setup.write("");
    let message = check_config_fails(&setup.config_path(), "with a malformed userdb line");
    assert!(
        message.contains("uid=abc"),
        "the error names the bad field: {message}"
    );
}

#[test]
fn check_missing_config_file_fails() {
    let dir = common::TempDir::new("cli-no-config");
    let missing = dir.path.join("missing.conf");
    let message = check_config_fails(&missing, "with a missing configuration file");
    let path = missing.display().to_string();
    assert!(message.contains(&path), "the error names {path}: {message}");
}

#[test]
fn nondefaults_lists_changed_settings() {
    let (setup, _) = setup_with_extra("cli-n", "max_recipients = 7\n");
    let config = setup.config_path();
    let output = run_zoha(&["-n", "-c", config.to_str().expect("UTF-8 config path")]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "exit status of -n; stderr: {}",
        stderr(&output)
    );
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(&"max_recipients = 7"),
        "-n lists the changed setting: {text}"
    );
    assert!(
        lines.contains(&"hostname = zoha.test"),
        "-n lists the hostname: {text}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("workers ")),
        "-n lists workers, which keeps its default: {text}"
    );
}

#[test]
fn lookup_known_address_prints_verdict() {
    let (setup, _) = setup_with_extra("cli-l", "");
    let config = setup.config_path();
    let config = config.to_str().expect("UTF-8 config path");

    let output = run_zoha(&["-l", "alice+tag@example.org", "-c", config]);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "exit status of -l for a known address; output: {text}{}",
        stderr(&output)
    );
    assert!(
        text.contains("verdict: deliver"),
        "-l verdict for alice: {text}"
    );
    let maildir = setup.dir.path.join("home/alice/Maildir");
    assert!(
        text.contains(&maildir.display().to_string()),
        "-l names the Maildir {}: {text}",
        maildir.display()
    );

    let output = run_zoha(&["-l", "nobody@example.org", "-c", config]);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit status of -l for an unknown address; output: {text}"
    );
    assert!(
        text.contains("550 5.1.1"),
        "-l verdict for an unknown address: {text}"
    );
}

#[test]
fn lookup_leaves_mailbox_untouched() {
    let (setup, _) = setup_with_extra("cli-l-dry", "");
    let config = setup.config_path();
    let output = run_zoha(&[
        "-l",
        "alice@example.org",
        "-c",
        config.to_str().expect("UTF-8 config path"),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "exit status of -l; output: {}{}",
        stdout(&output),
        stderr(&output)
    );
    let maildir = setup.dir.path.join("home/alice/Maildir");
    assert!(
        !maildir.exists(),
        "-l only reports what a delivery would do, but it created {}",
        maildir.display()
    );
}

#[test]
fn version_flag_prints_version() {
    let output = run_zoha(&["-V"]);
    assert_eq!(output.status.code(), Some(0), "exit status of -V");
    assert_eq!(
        stdout(&output).trim_end(),
        format!("zoha {}", env!("CARGO_PKG_VERSION")),
        "-V output"
    );
}

#[test]
fn help_flag_prints_usage() {
    let output = run_zoha(&["-h"]);
    assert_eq!(output.status.code(), Some(0), "exit status of -h");
    let text = stdout(&output);
    assert!(text.starts_with("usage: zoha"), "-h output: {text}");
    for option in ["-c FILE", "-f", "-i", "-t", "-n", "-l ADDRESS", "-V", "-h"] {
        assert!(
            text.contains(&format!("  {option} ")),
            "-h does not describe {option}: {text}"
        );
    }
}

#[test]
fn usage_errors_exit_two() {
    let cases: [&[&str]; 4] = [&["-Z"], &["-c"], &["-t", "-V"], &["unexpected-argument"]];
    for args in cases {
        let output = run_zoha(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "exit status of zoha {args:?}; stderr: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("usage: zoha"),
            "zoha {args:?} prints the usage on standard error: {}",
            stderr(&output)
        );
    }
}
