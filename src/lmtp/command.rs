//! LMTP command lines: splits a line into a verb and its argument.
//!
//! Verbs are case-insensitive. `MAIL FROM:` and `RCPT TO:` accept spaces
//! after the colon, as Postfix and most servers do. Only the syntax of the
//! line is checked here; paths and parameters are parsed by
//! [`crate::address`] and the session.
//!
//! Failures: [`CommandError`] for a line that is not valid UTF-8, contains
//! control characters, or names no known verb.

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `LHLO <domain>`
    Lhlo(String),
    /// `HELO` or `EHLO`, which LMTP does not allow.
    HeloOrEhlo,
    /// `MAIL FROM:<path> [params]`; the text after the colon.
    Mail(String),
    /// `RCPT TO:<path> [params]`; the text after the colon.
    Rcpt(String),
    /// `DATA`
    Data,
    /// `BDAT <size> [LAST]`; the raw arguments.
    Bdat(String),
    /// `RSET`
    Rset,
    /// `NOOP [text]`
    Noop,
    /// `VRFY <text>`
    Vrfy,
    /// `QUIT`
    Quit,
    /// A known SMTP verb Zoha does not implement (EXPN, HELP, STARTTLS, ...).
    NotImplemented(String),
}

/// The reason a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Invalid UTF-8 or control characters.
    BadCharacters,
    /// An unknown verb.
    Unknown,
    /// `MAIL` without `FROM:` or `RCPT` without `TO:`, or arguments where none belong.
    Syntax(&'static str),
}

/// Parses one command line (without its line end).
pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
    let text = std::str::from_utf8(line).map_err(|_| CommandError::BadCharacters)?;
    let (verb, rest) = match text.find(' ') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    };
    let verb = verb.to_ascii_uppercase();
    // In a MAIL or RCPT path a control character is an address syntax
    // error, which the address parser reports as 501 5.1.7 or 501 5.1.3.
    let has_path = verb == "MAIL" || verb == "RCPT";
    if !has_path && text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(CommandError::BadCharacters);
    }
    let command = match verb.as_str() {
        "LHLO" => Command::Lhlo(rest.trim().to_string()),
        "HELO" | "EHLO" => Command::HeloOrEhlo,
        "MAIL" => Command::Mail(
            after_keyword(rest, "FROM:")
                .ok_or(CommandError::Syntax("MAIL FROM:<address> expected"))?,
        ),
        "RCPT" => Command::Rcpt(
            after_keyword(rest, "TO:").ok_or(CommandError::Syntax("RCPT TO:<address> expected"))?,
        ),
        "DATA" => no_argument(rest, Command::Data, "DATA takes no argument")?,
        "BDAT" => Command::Bdat(rest.trim().to_string()),
        "RSET" => no_argument(rest, Command::Rset, "RSET takes no argument")?,
        "NOOP" => Command::Noop,
        "VRFY" => Command::Vrfy,
        "QUIT" => no_argument(rest, Command::Quit, "QUIT takes no argument")?,
        "EXPN" | "HELP" | "STARTTLS" | "AUTH" | "ETRN" | "TURN" | "ATRN" | "SEND" | "SOML"
        | "SAML" | "XCLIENT" | "XFORWARD" => Command::NotImplemented(verb),
        _ => return Err(CommandError::Unknown),
    };
    Ok(command)
}

/// Returns the text after `keyword` (case-insensitive) and optional spaces.
fn after_keyword(rest: &str, keyword: &str) -> Option<String> {
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    Some(
        rest[keyword.len()..]
            .trim_start_matches(' ')
            .trim_end()
            .to_string(),
    )
}

fn no_argument(
    rest: &str,
    command: Command,
    message: &'static str,
) -> Result<Command, CommandError> {
    if rest.trim().is_empty() {
        Ok(command)
    } else {
        Err(CommandError::Syntax(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_case_insensitive() {
        assert_eq!(
            parse(b"lhlo client.example"),
            Ok(Command::Lhlo("client.example".into()))
        );
        assert_eq!(parse(b"QuIt"), Ok(Command::Quit));
        assert_eq!(parse(b"data"), Ok(Command::Data));
    }

    #[test]
    fn mail_and_rcpt_arguments() {
        assert_eq!(
            parse(b"MAIL FROM:<a@b> SIZE=10"),
            Ok(Command::Mail("<a@b> SIZE=10".into()))
        );
        assert_eq!(
            parse(b"mail from: <a@b>"),
            Ok(Command::Mail("<a@b>".into()))
        );
        assert_eq!(parse(b"RCPT TO:<x@y>"), Ok(Command::Rcpt("<x@y>".into())));
        assert!(matches!(parse(b"MAIL <a@b>"), Err(CommandError::Syntax(_))));
        assert!(matches!(
            parse(b"RCPT FROM:<a@b>"),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(parse(b"RCPT"), Err(CommandError::Syntax(_))));
    }

    #[test]
    fn helo_and_ehlo_flagged() {
        assert_eq!(parse(b"HELO x"), Ok(Command::HeloOrEhlo));
        assert_eq!(parse(b"EHLO x"), Ok(Command::HeloOrEhlo));
    }

    #[test]
    fn unknown_and_bad_bytes() {
        assert_eq!(parse(b"FROB"), Err(CommandError::Unknown));
        assert_eq!(parse(b""), Err(CommandError::Unknown));
        assert_eq!(parse(b"NOOP \xff"), Err(CommandError::BadCharacters));
        assert_eq!(parse(b"NOOP \x00"), Err(CommandError::BadCharacters));
    }

    #[test]
    fn arguments_where_none_belong() {
        assert!(matches!(parse(b"DATA x"), Err(CommandError::Syntax(_))));
        assert!(matches!(parse(b"QUIT now"), Err(CommandError::Syntax(_))));
        assert_eq!(parse(b"NOOP anything"), Ok(Command::Noop));
    }

    #[test]
    fn not_implemented_verbs() {
        assert_eq!(
            parse(b"STARTTLS"),
            Ok(Command::NotImplemented("STARTTLS".into()))
        );
        assert_eq!(
            parse(b"expn list"),
            Ok(Command::NotImplemented("EXPN".into()))
        );
    }
}
