//! RFC 5321 paths: parses `<local@domain>` with its ESMTP parameters.
//!
//! Accepts dot-string and quoted-string local parts, UTF-8 in local parts and
//! domains (RFC 6531), domain names and address literals, the null path `<>`
//! (for MAIL), the bare `<Postmaster>` (for RCPT), and source routes
//! (`<@a,@b:user@host>`, tolerated and dropped as RFC 5321 section 3.3 requires).
//! Parameters follow the closing bracket as `KEYWORD[=value]` words.
//!
//! Exports [`Mailbox`], [`parse_reverse_path`], [`parse_forward_path`] and
//! [`Parameter`].
//!
//! Failures: [`AddressError`] says where the syntax broke; the LMTP layer turns
//! it into `501 5.1.7` (MAIL) or `501 5.1.3` (RCPT).

use std::fmt;

/// A mailbox `local-part@domain` from a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The local part with quoting removed (quoted pairs resolved).
    pub local_part: String,
    /// The domain (or address literal with brackets) as given; empty only for
    /// the bare `Postmaster` recipient.
    pub domain: String,
    /// The path between the angle brackets exactly as the client sent it,
    /// without a source route.
    pub as_given: String,
}

/// Helpers the unit tests use.
#[cfg(test)]
impl Mailbox {
    /// Returns `local@domain` with the domain lowercased, for lookups.
    pub fn lookup_key(&self) -> String {
        if self.domain.is_empty() {
            self.local_part.clone()
        } else {
            format!("{}@{}", self.local_part, self.domain.to_lowercase())
        }
    }

    /// Reports whether the address contains non-ASCII characters.
    pub fn is_utf8(&self) -> bool {
        !self.as_given.is_ascii()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_given)
    }
}

/// A parameter after the path: `KEYWORD` or `KEYWORD=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// The keyword, uppercased.
    pub keyword: String,
    /// The value after `=`, if any.
    pub value: Option<String>,
}

/// A path that failed to parse, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError {
    /// The syntax problem, for the reply text.
    pub reason: &'static str,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for AddressError {}

fn error(reason: &'static str) -> AddressError {
    AddressError { reason }
}

/// Parses the argument of `MAIL FROM:`; `Ok((None, ..))` is the null path `<>`.
pub fn parse_reverse_path(arg: &str) -> Result<(Option<Mailbox>, Vec<Parameter>), AddressError> {
    let (inner, rest) = split_path(arg)?;
    let params = parse_parameters(rest)?;
    if inner.is_empty() {
        return Ok((None, params));
    }
    Ok((Some(parse_mailbox(strip_source_route(inner)?)?), params))
}

/// Parses the argument of `RCPT TO:`. The null path is an error; a bare
/// `Postmaster` (any case) is accepted with an empty domain.
pub fn parse_forward_path(arg: &str) -> Result<(Mailbox, Vec<Parameter>), AddressError> {
    let (inner, rest) = split_path(arg)?;
    let params = parse_parameters(rest)?;
    if inner.is_empty() {
        return Err(error("the null path <> is not a valid recipient"));
    }
    let inner = strip_source_route(inner)?;
    if inner.eq_ignore_ascii_case("postmaster") {
        return Ok((
            Mailbox {
                local_part: "postmaster".into(),
                domain: String::new(),
                as_given: inner.into(),
            },
            params,
        ));
    }
    Ok((parse_mailbox(inner)?, params))
}

/// Splits `<path> params` into the text inside the brackets and the rest,
/// honouring quoted strings that may contain `>`.
fn split_path(arg: &str) -> Result<(&str, &str), AddressError> {
    let arg = arg.trim_start_matches(' ');
    let body = arg
        .strip_prefix('<')
        .ok_or(error("the path must be enclosed in <>"))?;
    let bytes = body.as_bytes();
    let mut in_quotes = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            b'>' if !in_quotes => {
                let rest = &body[i + 1..];
                if !rest.is_empty() && !rest.starts_with(' ') {
                    return Err(error(
                        "parameters must be separated from the path by a space",
                    ));
                }
                return Ok((&body[..i], rest));
            }
            _ => {}
        }
        i += 1;
    }
    Err(error("the path has no closing >"))
}

/// Drops a source route `@a,@b:` in front of the mailbox after checking its syntax.
fn strip_source_route(inner: &str) -> Result<&str, AddressError> {
    if !inner.starts_with('@') {
        return Ok(inner);
    }
    let (route, mailbox) = inner
        .split_once(':')
        .ok_or(error("a source route must end with a colon"))?;
    for hop in route.split(',') {
        let domain = hop
            .strip_prefix('@')
            .ok_or(error("each source route hop starts with @"))?;
        check_domain(domain)?;
    }
    Ok(mailbox)
}

/// Parses `local-part@domain`.
fn parse_mailbox(text: &str) -> Result<Mailbox, AddressError> {
    let (local_part, consumed) = if text.starts_with('"') {
        parse_quoted_string(text)?
    } else {
        let end = text.rfind('@').ok_or(error("the address has no @domain"))?;
        let local = &text[..end];
        check_dot_string(local)?;
        (local.to_string(), end)
    };
    let domain = text[consumed..]
        .strip_prefix('@')
        .ok_or(error("the address has no @domain"))?;
    check_domain(domain)?;
    Ok(Mailbox {
        local_part,
        domain: domain.to_string(),
        as_given: text.to_string(),
    })
}

/// Parses a quoted string at the start of `text`; returns the unquoted
/// content and the number of bytes consumed.
fn parse_quoted_string(text: &str) -> Result<(String, usize), AddressError> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, q)) if (' '..='~').contains(&q) => out.push(q),
                _ => return Err(error("invalid quoted pair in the local part")),
            },
            ' '..='~' => out.push(c),
            c if !c.is_ascii() && !c.is_control() => out.push(c),
            _ => return Err(error("invalid character in the quoted local part")),
        }
    }
    Err(error("the quoted local part has no closing quote"))
}

/// Characters allowed in an atom (RFC 5322 atext, plus UTF-8 per RFC 6531).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

fn check_dot_string(local: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(error("the local part is empty"));
    }
    for atom in local.split('.') {
        if atom.is_empty() {
            return Err(error(
                "the local part has an empty atom (leading, trailing or double dot)",
            ));
        }
        if !atom.chars().all(is_atext) {
            return Err(error("invalid character in the local part"));
        }
    }
    Ok(())
}

/// Checks a domain name (with U-labels allowed) or an address literal.
fn check_domain(domain: &str) -> Result<(), AddressError> {
    if domain.is_empty() {
        return Err(error("the domain is empty"));
    }
    if let Some(literal) = domain.strip_prefix('[') {
        let literal = literal
            .strip_suffix(']')
            .ok_or(error("the address literal has no closing ]"))?;
        return check_address_literal(literal);
    }
    for label in domain.split('.') {
        let ok = !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || c == '-'
                    || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
            });
        if !ok {
            return Err(error("invalid domain name"));
        }
    }
    Ok(())
}

fn check_address_literal(literal: &str) -> Result<(), AddressError> {
    if let Some(v6) = literal.strip_prefix("IPv6:") {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(drop)
            .map_err(|_| error("invalid IPv6 address literal"));
    }
    if literal.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    // General-address-literal: Standardized-tag ":" 1*dcontent
    match literal.split_once(':') {
        Some((tag, content))
            if !tag.is_empty()
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !content.is_empty()
                && content
                    .bytes()
                    .all(|b| (33..=90).contains(&b) || (94..=126).contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(error("invalid address literal")),
    }
}

/// Parses space-separated `KEYWORD[=value]` parameters.
fn parse_parameters(rest: &str) -> Result<Vec<Parameter>, AddressError> {
    let mut params = Vec::new();
    for word in rest.split(' ').filter(|w| !w.is_empty()) {
        let (keyword, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (word, None),
        };
        let keyword_ok = !keyword.is_empty()
            && keyword.as_bytes()[0].is_ascii_alphanumeric()
            && keyword
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !keyword_ok {
            return Err(error("invalid parameter keyword"));
        }
        if let Some(v) = &value {
            if v.is_empty()
                || v.bytes()
                    .any(|b| b == b'=' || b.is_ascii_control() || b == b' ')
            {
                return Err(error("invalid parameter value"));
            }
        }
        params.push(Parameter {
            keyword: keyword.to_ascii_uppercase(),
            value,
        });
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt(arg: &str) -> Result<Mailbox, AddressError> {
        parse_forward_path(arg).map(|(m, _)| m)
    }

    #[test]
    fn simple_mailbox() {
        let m = rcpt("<alice@Example.ORG>").unwrap();
        assert_eq!(m.local_part, "alice");
        assert_eq!(m.domain, "Example.ORG");
        assert_eq!(m.lookup_key(), "alice@example.org");
        assert_eq!(m.as_given, "alice@Example.ORG");
    }

    #[test]
    fn null_reverse_path_with_params() {
        let (m, params) = parse_reverse_path("<> SIZE=20785 BODY=8BITMIME").unwrap();
        assert!(m.is_none());
        assert_eq!(
            params[0],
            Parameter {
                keyword: "SIZE".into(),
                value: Some("20785".into())
            }
        );
        assert_eq!(
            params[1],
            Parameter {
                keyword: "BODY".into(),
                value: Some("8BITMIME".into())
            }
        );
    }

    #[test]
    fn null_forward_path_rejected() {
        assert!(rcpt("<>").is_err());
    }

    #[test]
    fn quoted_local_part() {
        let m = rcpt(r#"<"john \"smith\" >x"@example.org>"#).unwrap();
        assert_eq!(m.local_part, r#"john "smith" >x"#);
        assert_eq!(m.domain, "example.org");
    }

    #[test]
    fn quoted_local_part_with_nul_rejected() {
        assert!(rcpt("<\"a\u{0}b\"@example.org>").is_err());
    }

    #[test]
    fn utf8_local_part() {
        let m = rcpt("<jörg@example.org>").unwrap();
        assert_eq!(m.local_part, "jörg");
        assert!(m.is_utf8());
        let m = rcpt("<用户@例子.广告>").unwrap();
        assert_eq!(m.domain, "例子.广告");
    }

    #[test]
    fn source_route_dropped() {
        let m = rcpt("<@relay.example,@other.example:bob@example.org>").unwrap();
        assert_eq!(m.as_given, "bob@example.org");
        assert!(rcpt("<@relay.example bob@example.org>").is_err());
    }

    #[test]
    fn postmaster_without_domain() {
        let m = rcpt("<Postmaster>").unwrap();
        assert_eq!(m.local_part, "postmaster");
        assert!(m.domain.is_empty());
        assert!(rcpt("<alice>").is_err());
    }

    #[test]
    fn address_literals() {
        assert!(rcpt("<a@[192.0.2.1]>").is_ok());
        assert!(rcpt("<a@[IPv6:2001:db8::1]>").is_ok());
        assert!(rcpt("<a@[999.0.2.1]>").is_err());
        assert!(rcpt("<a@[IPv6:zz]>").is_err());
    }

    #[test]
    fn missing_brackets_rejected() {
        assert!(rcpt("alice@example.org").is_err());
        assert!(rcpt("<alice@example.org").is_err());
    }

    #[test]
    fn parameters_only_outside_brackets() {
        let (_, p) = parse_forward_path("<a@example.org> NOTIFY=NEVER").unwrap();
        assert_eq!(p[0].keyword, "NOTIFY");
        assert!(parse_forward_path("<a@example.org>NOTIFY=NEVER").is_err());
        assert!(parse_forward_path("<a@example.org NOTIFY=NEVER>").is_err());
    }

    #[test]
    fn path_traversal_local_parts() {
        assert!(rcpt("<../../etc@example.org>").is_err());
        assert!(rcpt("<.hidden@example.org>").is_err());
        assert!(rcpt("<a..b@example.org>").is_err());
        assert!(rcpt("<alice.@example.org>").is_err());
        assert!(rcpt("<alice/../bob@example.org>").is_err());
        // Syntactically valid; the account layer rejects these names.
        assert_eq!(
            rcpt("<alice/bob@example.org>").unwrap().local_part,
            "alice/bob"
        );
        assert_eq!(
            rcpt("<\"../../etc\"@example.org>").unwrap().local_part,
            "../../etc"
        );
    }

    #[test]
    fn control_characters_rejected() {
        assert!(rcpt("<a\u{1}b@example.org>").is_err());
        assert!(rcpt("<ab@exa mple.org>").is_err());
    }

    #[test]
    fn bad_domains_rejected() {
        assert!(rcpt("<a@>").is_err());
        assert!(rcpt("<a@-x.org>").is_err());
        assert!(rcpt("<a@x..org>").is_err());
        assert!(rcpt("<a@x_y.org>").is_err());
    }

    #[test]
    fn plus_detail_kept_in_local_part() {
        let m = rcpt("<alice+tag@example.org>").unwrap();
        assert_eq!(m.local_part, "alice+tag");
    }
}
