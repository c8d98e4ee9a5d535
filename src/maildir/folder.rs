//! Maildir++ folders: checks folder names and maps `+detail` to a folder.
//!
//! A folder `Lists.2026` lives in the directory `.Lists.2026` of the Maildir
//! root; dots separate hierarchy levels. Folder directories are named in
//! UTF-8, as Courier-IMAP 5 and maildrop 3 name them (older Courier
//! versions used IMAP's modified UTF-7 on disk, which `maildirmake
//! --convutf8` converts). Creating a folder is in [`super::Maildir::open_folder`].
//!
//! Failures: [`validate_folder_name`] returns a reason for names with `/`,
//! empty levels (which includes `..`), or control characters.

/// The trash folder, which the Maildir++ quota does not count; mail is
/// never delivered into it, or a sender could fill it without limit.
pub const TRASH: &str = "Trash";

/// Maximum length of a folder name made from a detail. File names are limited to 255
/// bytes, and Courier adds its own suffixes in some places.
const MAX_DETAIL_FOLDER: usize = 200;

/// Checks an on-disk folder name (without the leading dot).
pub fn validate_folder_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the folder name is empty".into());
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "folder name \"{}\" contains a control character",
            name.escape_default()
        ));
    }
    if name.contains('/') {
        return Err(format!("folder name \"{name}\" contains \"/\""));
    }
    // IMAP LIST treats these as wildcards, so clients could not name the folder.
    if name.contains(['*', '%']) {
        return Err(format!(
            "folder name \"{name}\" contains an IMAP wildcard (* or %)"
        ));
    }
    if name.split('.').any(str::is_empty) {
        return Err(format!(
            "folder name \"{name}\" has an empty level (leading, trailing or double dot)"
        ));
    }
    Ok(())
}

/// Turns an address detail into an on-disk folder name (without the dot);
/// `None` when the detail is empty, names INBOX, is too long, or is not a
/// valid folder, so the message goes to INBOX.
pub fn folder_for_detail(detail: &str) -> Option<String> {
    // Courier names IMAP folders INBOX.<name>, so `+INBOX.lists` means `.lists`.
    let detail = match detail.get(..6) {
        Some(prefix) if prefix.eq_ignore_ascii_case("INBOX.") => &detail[6..],
        _ => detail,
    };
    let unusable = detail.is_empty()
        || detail.eq_ignore_ascii_case("inbox")
        || detail == TRASH
        || detail.len() > MAX_DETAIL_FOLDER;
    if unusable {
        return None;
    }
    validate_folder_name(detail)
        .ok()
        .map(|()| detail.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_validated() {
        assert!(validate_folder_name("Lists").is_ok());
        assert!(validate_folder_name("Lists.2026").is_ok());
        assert!(validate_folder_name("Entwürfe").is_ok());
        assert!(validate_folder_name("A&B").is_ok());
        assert!(validate_folder_name("a/b").is_err());
        assert!(validate_folder_name("..").is_err());
        assert!(validate_folder_name("a..b").is_err());
        assert!(validate_folder_name(".a").is_err());
        assert!(validate_folder_name("a.").is_err());
        assert!(validate_folder_name("tab\there").is_err());
        assert!(validate_folder_name("del\u{7f}").is_err());
        assert!(validate_folder_name("").is_err());
        assert!(validate_folder_name("a%").is_err());
    }

    #[test]
    fn detail_to_folder() {
        assert_eq!(folder_for_detail("lists").as_deref(), Some("lists"));
        assert_eq!(folder_for_detail("Entwürfe").as_deref(), Some("Entwürfe"));
        assert_eq!(folder_for_detail(""), None);
        assert_eq!(folder_for_detail("INBOX"), None);
        assert_eq!(folder_for_detail("Trash"), None);
        assert_eq!(folder_for_detail("INBOX.lists").as_deref(), Some("lists"));
        assert_eq!(folder_for_detail("inbox.Trash"), None);
        assert_eq!(folder_for_detail("a*b"), None);
        assert_eq!(folder_for_detail("../x"), None);
        assert_eq!(folder_for_detail("a/b"), None);
        assert_eq!(folder_for_detail(&"x".repeat(300)), None);
    }
}
