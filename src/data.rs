//! Message content: decodes DATA and BDAT input into the stored form and spools it.
//!
//! [`DotDecoder`] implements RFC 5321 section 4.5.2 for DATA: only CRLF ends a
//! line, only CRLF "." CRLF ends the data (the CRLF of the DATA command counts
//! as the first one), and a line that starts with a dot loses that one dot,
//! the first line included. [`ChunkDecoder`] does the same line-end
//! conversion for BDAT chunks (RFC 3030), which carry no dot-stuffing. Both
//! store CRLF as LF and every other byte (bare CR, bare LF, NUL, 8-bit)
//! unchanged, because Maildir readers such as Courier IMAP expect LF line ends.
//!
//! [`MessageSink`] receives the decoded bytes, removes `Return-Path` header
//! fields (Zoha writes its own), records the value of the configured spam
//! header, enforces the size limit, and writes the result to a [`Spool`]:
//! memory up to [`SPOOL_MEMORY_LIMIT`], then an unnamed temporary file, so
//! memory per session stays bounded whatever the message size.
//!
//! Failures: a spool write error is latched in the sink ([`MessageSink::error`])
//! and reading continues to the end of the data, so the session stays in sync;
//! oversize is latched the same way ([`MessageSink::too_big`]).

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Bytes of a message kept in memory before the spool moves to a file.
pub const SPOOL_MEMORY_LIMIT: usize = 256 * 1024;

/// Maximum length of a captured header value; the rest is ignored.
const MAX_CAPTURED_VALUE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DotState {
    /// At the start of a line (after CRLF, or at the start of the data).
    LineStart,
    /// Inside a line.
    InLine,
    /// A CR was seen inside a line and is not yet written.
    Cr,
    /// A dot was seen at the start of a line.
    Dot,
    /// A dot and a CR were seen at the start of a line.
    DotCr,
}

/// Streaming decoder for DATA input.
#[derive(Debug)]
pub struct DotDecoder {
    state: DotState,
}

impl Default for DotDecoder {
    fn default() -> Self {
        DotDecoder::new()
    }
}

impl DotDecoder {
    /// Starts decoding right after the DATA command line.
    pub fn new() -> DotDecoder {
        DotDecoder {
            state: DotState::LineStart,
        }
    }

    /// Decodes `input`, passing stored-form bytes to `out`. Returns
    /// `Some(n)` when the end-of-data line ended after `n` bytes of `input`
    /// (the rest belongs to the next command), or `None` when all of `input`
    /// was consumed and more data is expected.
    pub fn feed(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                DotState::InLine => {
                    // Fast path: copy everything up to the next CR at once.
                    let rest = &input[i..];
                    let run = rest.iter().position(|&b| b == b'\r').unwrap_or(rest.len());
                    if run > 0 {
                        out(&rest[..run]);
                        i += run;
                    }
                    if i < input.len() {
                        self.state = DotState::Cr;
                        i += 1;
                    }
                }
                DotState::LineStart => {
                    match input[i] {
                        b'.' => self.state = DotState::Dot,
                        b'\r' => self.state = DotState::Cr,
                        b => {
                            out(&[b]);
                            self.state = DotState::InLine;
                        }
                    }
                    i += 1;
                }
                DotState::Cr => {
                    self.after_cr(input[i], out);
                    i += 1;
                }
                DotState::Dot => {
                    // The stuffed dot is dropped; the byte after it is content.
                    if input[i] == b'\r' {
                        self.state = DotState::DotCr;
                    } else {
                        out(&input[i..=i]);
                        self.state = DotState::InLine;
                    }
                    i += 1;
                }
                DotState::DotCr => {
                    if input[i] == b'\n' {
                        self.state = DotState::LineStart;
                        return Some(i + 1);
                    }
                    // "." CR <other>: the dot was stuffing, the CR is content.
                    self.after_cr(input[i], out);
                    i += 1;
                }
            }
        }
        None
    }

    /// Handles the byte after a pending CR.
    fn after_cr(&mut self, byte: u8, out: &mut dyn FnMut(&[u8])) {
        match byte {
            b'\n' => {
                out(b"\n");
                self.state = DotState::LineStart;
            }
            b'\r' => {
                out(b"\r");
                self.state = DotState::Cr;
            }
            other => {
                out(&[b'\r', other]);
                self.state = DotState::InLine;
            }
        }
    }
}

/// Streaming CRLF-to-LF conversion for BDAT chunks, which may split a CRLF.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    pending_cr: bool,
}

impl ChunkDecoder {
    /// Converts `input`, passing stored-form bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) {
        let mut rest = input;
        if self.pending_cr && !rest.is_empty() {
            self.pending_cr = false;
            if rest[0] == b'\n' {
                out(b"\n");
                rest = &rest[1..];
            } else {
                out(b"\r");
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\r') {
            out(&rest[..pos]);
            match rest.get(pos + 1) {
                Some(b'\n') => {
                    out(b"\n");
                    rest = &rest[pos + 2..];
                }
                Some(_) => {
                    out(b"\r");
                    rest = &rest[pos + 1..];
                }
                None => {
                    self.pending_cr = true;
                    rest = &[];
                }
            }
        }
        out(rest);
    }

    /// Ends the message: a CR left at the very end is content.
    pub fn finish(&mut self, out: &mut dyn FnMut(&[u8])) {
        if std::mem::take(&mut self.pending_cr) {
            out(b"\r");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderState {
    /// At the start of a header line; `name` collects the field name.
    LineStart,
    /// Inside a header line that is kept.
    Keep,
    /// Inside a header line that is dropped (a Return-Path field).
    Drop,
    /// In the body: everything passes.
    Body,
}

/// Removes `Return-Path` fields from the header section and captures the
/// value of one chosen field, streaming.
#[derive(Debug)]
struct HeaderFilter {
    state: HeaderState,
    name: Vec<u8>,
    /// The previous field was dropped, so its continuation lines are too.
    dropping: bool,
    capture_name: Option<String>,
    capturing: bool,
    captured: Option<Vec<u8>>,
}

/// Maximum length of a field name that is examined; longer names are kept.
const MAX_FIELD_NAME: usize = 64;

impl HeaderFilter {
    fn new(capture_name: Option<String>) -> HeaderFilter {
        HeaderFilter {
            state: HeaderState::LineStart,
            name: Vec::new(),
            dropping: false,
            capture_name,
            capturing: false,
            captured: None,
        }
    }

    fn feed(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                HeaderState::Body => {
                    out(&input[i..]);
                    return;
                }
                HeaderState::Keep | HeaderState::Drop => {
                    let rest = &input[i..];
                    let end = rest
                        .iter()
                        .position(|&b| b == b'\n')
                        .map(|p| p + 1)
                        .unwrap_or(rest.len());
                    if self.state == HeaderState::Keep {
                        out(&rest[..end]);
                        self.capture(&rest[..end]);
                    }
                    if rest[end - 1] == b'\n' {
                        self.state = HeaderState::LineStart;
                    }
                    i += end;
                }
                HeaderState::LineStart => {
                    i += self.feed_line_start(input[i], out);
                }
            }
        }
    }

    /// Handles one byte at the start of a header line; returns 1.
    fn feed_line_start(&mut self, byte: u8, out: &mut dyn FnMut(&[u8])) -> usize {
        if self.name.is_empty() && (byte == b' ' || byte == b'\t') {
            // A continuation line belongs to the previous field.
            self.state = if self.dropping {
                HeaderState::Drop
            } else {
                HeaderState::Keep
            };
            if !self.dropping {
                out(&[byte]);
                self.capture(&[byte]);
            }
            return 1;
        }
        if self.name.is_empty() && byte == b'\n' {
            // The empty line that ends the header section.
            out(b"\n");
            self.capturing = false;
            self.state = HeaderState::Body;
            return 1;
        }
        self.name.push(byte);
        let is_name_byte = byte.is_ascii_graphic() || byte == b' ' || byte == b'\t';
        if byte == b':' {
            let name = std::mem::take(&mut self.name);
            if self.decide_field(&name) {
                out(&name);
            }
        } else if !is_name_byte || self.name.len() > MAX_FIELD_NAME {
            // Not a header field: the body starts here, without an empty line.
            out(&std::mem::take(&mut self.name));
            self.capturing = false;
            self.state = HeaderState::Body;
        }
        1
    }

    /// Chooses what happens to the field whose name (with the colon) is
    /// `name`; returns true when it is kept.
    fn decide_field(&mut self, name: &[u8]) -> bool {
        let field = name[..name.len() - 1].trim_ascii_end();
        self.dropping = field.eq_ignore_ascii_case(b"Return-Path");
        self.capturing = false;
        if let Some(wanted) = &self.capture_name {
            if field.eq_ignore_ascii_case(wanted.as_bytes()) && self.captured.is_none() {
                self.capturing = true;
                self.captured = Some(Vec::new());
            }
        }
        self.state = if self.dropping {
            HeaderState::Drop
        } else {
            HeaderState::Keep
        };
        !self.dropping
    }

    fn capture(&mut self, bytes: &[u8]) {
        if !self.capturing {
            return;
        }
        if let Some(value) = self.captured.as_mut() {
            let room = MAX_CAPTURED_VALUE.saturating_sub(value.len());
            value.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// Ends the message; a header section without a body is complete too.
    fn finish(&mut self, out: &mut dyn FnMut(&[u8])) {
        if self.state == HeaderState::LineStart && !self.name.is_empty() {
            out(&std::mem::take(&mut self.name));
        }
    }
}

/// Decoded message bytes: in memory while small, then in an unnamed file.
#[derive(Debug)]
pub struct Spool {
    memory: Vec<u8>,
    file: Option<File>,
    directory: PathBuf,
    len: u64,
    /// Number of LF bytes stored, so the size with CRLF line ends is `len + lines`.
    lines: u64,
}

impl Spool {
    /// Creates an empty spool whose file, if needed, goes into `directory`.
    pub fn new(directory: &Path) -> Spool {
        Spool {
            memory: Vec::new(),
            file: None,
            directory: directory.to_path_buf(),
            len: 0,
            lines: 0,
        }
    }

    /// Appends `bytes`, moving to a file once memory contains [`SPOOL_MEMORY_LIMIT`] bytes.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.len += bytes.len() as u64;
        self.lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        if let Some(file) = self.file.as_mut() {
            return file.write_all(bytes);
        }
        if self.memory.len() + bytes.len() <= SPOOL_MEMORY_LIMIT {
            self.memory.extend_from_slice(bytes);
            return Ok(());
        }
        let mut file = create_spool_file(&self.directory)?;
        file.write_all(&self.memory)?;
        file.write_all(bytes)?;
        self.memory = Vec::new();
        self.file = Some(file);
        Ok(())
    }

    /// Returns the stored size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Reports whether nothing was stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the number of LF bytes stored.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Discards the content (used when the message is too big).
    pub fn clear(&mut self) {
        self.memory = Vec::new();
        self.file = None;
        self.len = 0;
        self.lines = 0;
    }

    /// Copies the whole content to `dest`.
    pub fn copy_to(&mut self, dest: &mut File) -> io::Result<()> {
        match self.file.as_mut() {
            None => dest.write_all(&self.memory),
            Some(file) => {
                file.flush()?;
                file.seek(SeekFrom::Start(0))?;
                let copied = io::copy(file, dest)?;
                if copied != self.len {
                    return Err(io::Error::other(format!(
                        "spool file returned {copied} bytes, expected {}",
                        self.len
                    )));
                }
                Ok(())
            }
        }
    }
}

/// Creates an unnamed file in `directory`; where `O_TMPFILE` is not
/// supported, a named file is created and unlinked at once.
fn create_spool_file(directory: &Path) -> io::Result<File> {
    match crate::sys::create_unnamed_temp(directory) {
        Ok(fd) => Ok(File::from(fd)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
            ) =>
        {
            create_named_then_unlink(directory)
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot create a spool file in {}: {e}", directory.display()),
        )),
    }
}

fn create_named_then_unlink(directory: &Path) -> io::Result<File> {
    use std::os::fd::AsFd;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = crate::sys::open_dir(directory)?;
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!(".zoha-spool.{}.{n}", crate::sys::getpid());
        let fd: OwnedFd =
            match crate::sys::create_exclusive_at(dir.as_fd(), name.as_ref(), 0o600, true) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
        crate::sys::unlink_at(dir.as_fd(), name.as_ref())?;
        return Ok(File::from(fd));
    }
    Err(io::Error::other("cannot find a free spool file name"))
}

/// The receiver of decoded content during DATA or BDAT: the header filter,
/// the size limit, the spool, and the latched errors.
#[derive(Debug)]
pub struct MessageSink {
    filter: HeaderFilter,
    spool: Spool,
    max_size: u64,
    /// Size of the decoded input with every LF counted as CRLF.
    size: u64,
    too_big: bool,
    error: Option<io::Error>,
}

/// Returns a writer for filtered output that stores into `spool` until the
/// first error, which it keeps in `error`.
fn spool_writer<'a>(
    spool: &'a mut Spool,
    error: &'a mut Option<io::Error>,
) -> impl FnMut(&[u8]) + 'a {
    move |chunk| {
        if error.is_none() {
            if let Err(e) = spool.write(chunk) {
                *error = Some(e);
            }
        }
    }
}

/// A received message: the spool and what was latched while receiving it.
#[derive(Debug)]
pub struct Content {
    /// The stored form, without `Return-Path` fields.
    pub spool: Spool,
    /// The value of the captured header field, if it was present.
    pub captured_header: Option<Vec<u8>>,
    /// The message was larger than the limit; the spool is empty.
    pub too_big: bool,
    /// The first spool write error.
    pub error: Option<io::Error>,
    /// Size of everything received, with every LF counted as CRLF, also
    /// past the size limit.
    pub received_size: u64,
}

impl MessageSink {
    /// Creates a sink that spools into `spool_directory`, enforces
    /// `max_size` on the size with CRLF line ends, and captures the value
    /// of the header field `capture_header`, if given.
    pub fn new(
        spool_directory: &Path,
        max_size: u64,
        capture_header: Option<String>,
    ) -> MessageSink {
        MessageSink {
            filter: HeaderFilter::new(capture_header),
            spool: Spool::new(spool_directory),
            max_size,
            size: 0,
            too_big: false,
            error: None,
        }
    }

    /// Stores decoded `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64 + bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        if self.too_big {
            return;
        }
        if self.size > self.max_size {
            self.too_big = true;
            self.spool.clear();
            return;
        }
        if self.error.is_some() {
            return;
        }
        let mut store = spool_writer(&mut self.spool, &mut self.error);
        self.filter.feed(bytes, &mut store);
    }

    #[cfg(test)]
    /// Reports whether the message is already over the size limit.
    pub fn is_too_big(&self) -> bool {
        self.too_big
    }

    /// Ends the message.
    pub fn finish(mut self) -> Content {
        if !self.too_big && self.error.is_none() {
            let mut store = spool_writer(&mut self.spool, &mut self.error);
            self.filter.finish(&mut store);
        }
        Content {
            spool: self.spool,
            captured_header: self.filter.captured.take(),
            too_big: self.too_big,
            error: self.error,
            received_size: self.size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the stored
    /// bytes and the bytes left after the end-of-data line.
    fn decode_dot(input: &[u8], step: usize) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut decoder = DotDecoder::new();
        let mut out = Vec::new();
        for (n, chunk) in input.chunks(step.max(1)).enumerate() {
            if let Some(used) = decoder.feed(chunk, &mut |b| out.extend_from_slice(b)) {
                let offset = n * step.max(1) + used;
                return (out, Some(input[offset..].to_vec()));
            }
        }
        (out, None)
    }

    fn decode_all_steps(input: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
        let expected = decode_dot(input, input.len());
        for step in 1..8 {
            assert_eq!(decode_dot(input, step), expected, "step {step}");
        }
        expected
    }

    #[test]
    fn dot_simple_message() {
        let (out, rest) = decode_all_steps(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
        assert_eq!(out, b"Subject: x\n\nhello\n");
        assert_eq!(rest.unwrap(), b"QUIT\r\n");
    }

    #[test]
    fn dot_bare_lf_is_not_line_end() {
        // one line model for the end search and the unstuffing.
        let (out, rest) = decode_all_steps(b"this is a test of dot\n...\n\r\n.\r\n");
        assert_eq!(out, b"this is a test of dot\n...\n\n");
        assert_eq!(rest.unwrap(), b"");
    }

    #[test]
    fn dot_smuggling_sequences_stay_content() {
        // only CRLF.CRLF ends the data.
        let body =
            b"a\n.\nMAIL FROM:<x@y>\r.\rRCPT TO:<z@y>\r\n.\nDATA\n.\r\nb\r\n\x00.\r\nend\r\n.\r\n";
        let (out, rest) = decode_all_steps(body);
        assert_eq!(rest.unwrap(), b"");
        assert_eq!(
            out,
            b"a\n.\nMAIL FROM:<x@y>\r.\rRCPT TO:<z@y>\n\nDATA\n.\nb\n\x00.\nend\n".to_vec()
        );
    }

    #[test]
    fn dot_unstuffing_first_line_too() {
        // every stuffed line loses exactly one dot.
        let (out, _) = decode_all_steps(b"..test\r\n..\r\n..\r\n.\r\n");
        assert_eq!(out, b".test\n.\n.\n");
    }

    #[test]
    fn dot_immediate_end() {
        // DATA then CRLF.CRLF at once.
        let (out, rest) = decode_all_steps(b"\r\n.\r\n");
        assert_eq!(out, b"\n");
        assert_eq!(rest.unwrap(), b"");
        let (out, rest) = decode_all_steps(b".\r\nNOOP\r\n");
        assert_eq!(out, b"");
        assert_eq!(rest.unwrap(), b"NOOP\r\n");
    }

    #[test]
    fn dot_without_end_consumes_all() {
        let (out, rest) = decode_all_steps(b"no end\r\n.x\r\n");
        assert_eq!(out, b"no end\nx\n");
        assert!(rest.is_none());
    }

    #[test]
    fn dot_cr_variants_after_dot() {
        let (out, _) = decode_all_steps(b".\rX\r\n.\r\r\n.\r\n");
        assert_eq!(out, b"\rX\n\r\n");
    }

    #[test]
    fn dot_eight_bit_and_nul_kept() {
        // no charset decoding anywhere.
        let (out, _) = decode_all_steps(b"Subject: caf\xe9\r\n\r\n\x00\xff\xfe\r\n.\r\n");
        assert_eq!(out, b"Subject: caf\xe9\n\n\x00\xff\xfe\n");
    }

    #[test]
    fn dot_lone_cr_at_end_of_line() {
        let (out, _) = decode_all_steps(b"a\r\r\nb\r\n.\r\n");
        assert_eq!(out, b"a\r\nb\n");
    }

    fn decode_chunks(chunks: &[&[u8]]) -> Vec<u8> {
        let mut decoder = ChunkDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut |b| out.extend_from_slice(b));
        }
        decoder.finish(&mut |b| out.extend_from_slice(b));
        out
    }

    #[test]
    fn chunk_crlf_split_across_chunks() {
        assert_eq!(decode_chunks(&[b"a\r", b"\nb\r\n"]), b"a\nb\n");
        assert_eq!(decode_chunks(&[b"a\r", b"b"]), b"a\rb");
        assert_eq!(decode_chunks(&[b"a\r"]), b"a\r");
        assert_eq!(decode_chunks(&[b"a\r", b"", b"\n"]), b"a\n");
    }

    #[test]
    fn chunk_no_dot_unstuffing() {
        assert_eq!(decode_chunks(&[b"..x\r\n.\r\n"]), b"..x\n.\n");
    }

    fn filter(input: &[u8], capture: Option<&str>, step: usize) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut f = HeaderFilter::new(capture.map(str::to_string));
        let mut out = Vec::new();
        for chunk in input.chunks(step) {
            f.feed(chunk, &mut |b| out.extend_from_slice(b));
        }
        f.finish(&mut |b| out.extend_from_slice(b));
        (out, f.captured)
    }

    #[test]
    fn header_return_path_removed() {
        let input = b"Return-Path: <old@x>\nReturn-path : <a>\n  <folded>\nSubject: s\n\tcont\n\nReturn-Path: body\n";
        for step in 1..6 {
            let (out, _) = filter(input, None, step);
            assert_eq!(
                out, b"Subject: s\n\tcont\n\nReturn-Path: body\n",
                "step {step}"
            );
        }
    }

    #[test]
    fn header_capture_value() {
        let input = b"X-Spam-Flag: YES\n  more\nSubject: x\n\nX-Spam-Flag: NO\n";
        let (out, captured) = filter(input, Some("x-spam-flag"), 3);
        assert_eq!(out, input.to_vec());
        assert_eq!(captured.unwrap(), b" YES\n  more\n");
    }

    #[test]
    fn header_not_a_field_starts_body() {
        let input = b"Subject: x\nthis is not a header\nReturn-Path: kept\n";
        let (out, _) = filter(input, None, 4);
        assert_eq!(out, input.to_vec());
    }

    #[test]
    fn header_without_body_kept() {
        let (out, _) = filter(b"Subject", None, 2);
        assert_eq!(out, b"Subject");
    }

    #[test]
    fn sink_size_limit_latches() {
        let dir = std::env::temp_dir();
        let mut sink = MessageSink::new(&dir, 10, None);
        sink.write(b"12345");
        assert!(!sink.is_too_big());
        sink.write(b"1234\n");
        assert!(sink.is_too_big());
        sink.write(b"more");
        let content = sink.finish();
        assert!(content.too_big);
        assert!(content.spool.is_empty());
    }

    #[test]
    fn spool_moves_to_file_when_large() {
        let dir = std::env::temp_dir();
        let mut spool = Spool::new(&dir);
        let line = vec![b'x'; 1023];
        let mut expected = Vec::new();
        for _ in 0..600 {
            spool.write(&line).unwrap();
            spool.write(b"\n").unwrap();
            expected.extend_from_slice(&line);
            expected.push(b'\n');
        }
        assert!(spool.file.is_some());
        assert_eq!(spool.len(), expected.len() as u64);
        assert_eq!(spool.lines(), 600);
        let path = dir.join(format!("zoha-spool-test-{}", std::process::id()));
        let mut dest = File::create(&path).unwrap();
        spool.copy_to(&mut dest).unwrap();
        spool.copy_to(&mut dest).unwrap();
        drop(dest);
        let written = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(written.len(), expected.len() * 2);
        assert_eq!(&written[..expected.len()], &expected[..]);
    }
}
