//! Maildir++ folders: name checks, modified UTF-7, and creating a folder as Courier does.
//!
//! A folder `Lists.2026` lives in the directory `.Lists.2026` of the Maildir
//! root; dots separate hierarchy levels. On disk, names use IMAP's modified
//! UTF-7 (RFC 3501 section 5.1.3): printable ASCII stands for itself, `&` is
//! written `&-`, and other characters are `&` + base64 of UTF-16BE (with `,`
//! for `/`) + `-`. A new folder gets `tmp/`, `new/`, `cur/` and an empty
//! `maildirfolder` file, and the name `INBOX.<folder>` is appended to
//! `courierimapsubscribed` so IMAP clients list it.
//!
//! Failures: [`validate_folder_name`] returns a reason for names with `/`,
//! empty or `..` components, control characters or malformed `&...-`
//! sequences; file operations return the OS error of the failed step.

/// Checks an on-disk folder name (without the leading dot).
pub fn validate_folder_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the folder name is empty".into());
    }
    if !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!(
            "folder name \"{}\" is not printable ASCII (modified UTF-7)",
            name.escape_default()
        ));
    }
    if name.contains('/') {
        return Err(format!("folder name \"{name}\" contains \"/\""));
    }
    for part in name.split('.') {
        if part.is_empty() || part == ".." {
            return Err(format!(
                "folder name \"{name}\" has an empty level (leading, trailing or double dot)"
            ));
        }
    }
    check_utf7_sequences(name)
}

/// Checks that every `&` starts a valid `&-` or `&<base64>-` sequence.
fn check_utf7_sequences(name: &str) -> Result<(), String> {
    let mut rest = name;
    while let Some(pos) = rest.find('&') {
        let after = &rest[pos + 1..];
        let end = after
            .find('-')
            .ok_or_else(|| format!("folder name \"{name}\" has \"&\" without a closing \"-\""))?;
        let encoded = &after[..end];
        let ok = encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b',');
        if !ok {
            return Err(format!(
                "folder name \"{name}\" has an invalid modified UTF-7 sequence"
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes a folder name into IMAP modified UTF-7.
pub fn encode_modified_utf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush_utf16(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush_utf16(&mut pending, &mut out);
    out
}

fn flush_utf16(pending: &mut Vec<u16>, out: &mut String) {
    if pending.is_empty() {
        return;
    }
    let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out.push('-');
    pending.clear();
}

/// Longest folder name made from a detail. File names are limited to 255
/// bytes, and Courier adds its own suffixes in some places.
const MAX_DETAIL_FOLDER: usize = 200;

/// Turns an address detail into an on-disk folder name (without the dot);
/// `None` when the detail is empty, names INBOX, is too long, or is not a
/// valid folder, so the message goes to INBOX.
pub fn folder_for_detail(detail: &str) -> Option<String> {
    if detail.is_empty() || detail.eq_ignore_ascii_case("inbox") {
        return None;
    }
    let encoded = encode_modified_utf7(detail);
    if encoded.len() > MAX_DETAIL_FOLDER {
        return None;
    }
    validate_folder_name(&encoded).ok().map(|_| encoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf7_examples() {
        assert_eq!(encode_modified_utf7("Lists"), "Lists");
        assert_eq!(encode_modified_utf7("A&B"), "A&-B");
        // RFC 3501 section 5.1.3 example.
        assert_eq!(encode_modified_utf7("台北"), "&U,BTFw-");
        assert_eq!(encode_modified_utf7("Entwürfe"), "Entw&APw-rfe");
    }

    #[test]
    fn folder_names_validated() {
        assert!(validate_folder_name("Lists").is_ok());
        assert!(validate_folder_name("Lists.2026").is_ok());
        assert!(validate_folder_name("Entw&APw-rfe").is_ok());
        assert!(validate_folder_name("a/b").is_err());
        assert!(validate_folder_name("..").is_err());
        assert!(validate_folder_name("a..b").is_err());
        assert!(validate_folder_name(".a").is_err());
        assert!(validate_folder_name("a.").is_err());
        assert!(validate_folder_name("a&b").is_err());
        assert!(validate_folder_name("a&!!-").is_err());
        assert!(validate_folder_name("tab\there").is_err());
        assert!(validate_folder_name("").is_err());
    }

    #[test]
    fn detail_to_folder() {
        assert_eq!(folder_for_detail("lists").as_deref(), Some("lists"));
        assert_eq!(folder_for_detail("jörg").as_deref(), Some("j&APY-rg"));
        assert_eq!(folder_for_detail(""), None);
        assert_eq!(folder_for_detail("INBOX"), None);
        assert_eq!(folder_for_detail("../x"), None);
        assert_eq!(folder_for_detail("a/b"), None);
        assert_eq!(folder_for_detail(&"x".repeat(300)), None);
    }
}
