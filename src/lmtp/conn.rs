//! Connection I/O: buffered reads and writes on raw descriptors with timeouts and stop signals.
//!
//! A [`Conn`] reads from one descriptor and writes to another (the same
//! socket for daemon sessions; standard input and output under inetd). Reads
//! go through a fixed 64 KiB buffer, so memory stays bounded. Replies
//! collect in an output buffer that is flushed whenever the buffered input
//! is used up, before the next read. So a pipelined batch gets its replies
//! in one write (RFC 2920), and no reply waits unflushed while the client
//! waits for it. Every wait uses `poll` with the session's timeout and also
//! watches the server's stop signals (see [`crate::shutdown`]).
//!
//! Failures: [`ReadError`] separates end of input, timeout, a stop request
//! and an OS error; writes fail with `TimedOut` when the peer stops reading.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::shutdown::StopSignals;
use crate::sys;

/// Size of the input buffer; also bounds a command line.
pub const INPUT_BUFFER: usize = 64 * 1024;

/// The reason no input is available.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection.
    Closed,
    /// No input within the timeout.
    Timeout,
    /// The server is stopping: `hard` means abort now, otherwise finish
    /// only if in the middle of a transaction.
    Stop {
        /// Abort at once.
        hard: bool,
    },
    /// A read or write failed.
    Io(io::Error),
}

/// Returns the time until `deadline`, or a timeout error once it has passed.
pub fn time_left(deadline: Instant) -> Result<Duration, ReadError> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(ReadError::Timeout),
    }
}

/// One line read by [`Conn::read_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its CRLF (or bare LF).
    Text(Vec<u8>),
    /// The line exceeded the limit; it was read to its end and discarded.
    TooLong,
}

/// A buffered, timed connection.
pub struct Conn {
    read_fd: RawFd,
    write_fd: RawFd,
    input: Box<[u8]>,
    start: usize,
    end: usize,
    output: Vec<u8>,
    stop: StopSignals,
    write_timeout: Duration,
    /// Keeps the descriptors open for the connection's lifetime.
    _owner: Box<dyn Send>,
}

impl Conn {
    /// Wraps `read_fd` and `write_fd`, which `owner` keeps open.
    pub fn new(
        read_fd: RawFd,
        write_fd: RawFd,
        owner: Box<dyn Send>,
        stop: StopSignals,
        write_timeout: Duration,
    ) -> Conn {
        Conn {
            read_fd,
            write_fd,
            input: vec![0u8; INPUT_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            output: Vec::with_capacity(1024),
            stop,
            write_timeout,
            _owner: owner,
        }
    }

    /// Returns the unread input.
    pub fn buffered(&self) -> &[u8] {
        &self.input[self.start..self.end]
    }

    /// Marks `n` bytes of the buffered input as used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes sure some input is buffered, waiting up to `timeout`. Before
    /// waiting, pending replies are flushed. With `idle`, a soft stop request
    /// also ends the wait (the session is between transactions).
    pub fn fill(&mut self, timeout: Duration, idle: bool) -> Result<(), ReadError> {
        if self.start < self.end {
            return Ok(());
        }
        self.read_more(timeout, idle)
    }

    /// Reads more input into the free part of the buffer (used while a
    /// command line is incomplete).
    fn fill_more(&mut self, timeout: Duration, idle: bool) -> Result<(), ReadError> {
        if self.start > 0 {
            self.input.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.read_more(timeout, idle)
    }

    /// Flushes pending replies, waits for input and appends it to the buffer.
    fn read_more(&mut self, timeout: Duration, idle: bool) -> Result<(), ReadError> {
        self.flush().map_err(ReadError::Io)?;
        self.wait_readable(timeout, idle)?;
        let n = sys::read(self.read_fd, &mut self.input[self.end..]).map_err(ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        self.end += n;
        Ok(())
    }

    fn wait_readable(&mut self, timeout: Duration, idle: bool) -> Result<(), ReadError> {
        let mut fds = vec![(self.read_fd, libc::POLLIN), (self.stop.hard, libc::POLLIN)];
        if idle {
            fds.push((self.stop.soft, libc::POLLIN));
        }
        let ready = sys::poll(&fds, Some(timeout)).map_err(ReadError::Io)?;
        if ready[1] != 0 {
            return Err(ReadError::Stop { hard: true });
        }
        if idle && ready[2] != 0 {
            return Err(ReadError::Stop { hard: false });
        }
        if ready[0] == 0 {
            return Err(ReadError::Timeout);
        }
        Ok(())
    }

    /// Reads one command line of at most `max` bytes. A line ends with LF;
    /// a CR before it is removed.
    pub fn read_line(
        &mut self,
        max: usize,
        timeout: Duration,
        idle: bool,
    ) -> Result<Line, ReadError> {
        // Room for the line and its LF, so a full buffer is never read into.
        let max = max.min(INPUT_BUFFER - 2);
        // The timeout covers the whole line, so a client sending one byte
        // at a time cannot hold the session open for ever.
        let deadline = Instant::now() + timeout;
        let mut scanned = 0;
        loop {
            let buffered = self.buffered();
            if let Some(pos) = buffered[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos;
                let mut line = buffered[..end].to_vec();
                self.consume(end + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > max {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Text(line));
            }
            scanned = buffered.len();
            if scanned > max + 1 {
                self.discard_line(deadline)?;
                return Ok(Line::TooLong);
            }
            // Only the first wait of a line may end on a soft stop.
            self.fill_more(time_left(deadline)?, idle && scanned == 0)?;
        }
    }

    /// Discards input up to and including the next LF.
    fn discard_line(&mut self, deadline: Instant) -> Result<(), ReadError> {
        loop {
            if let Some(pos) = self.buffered().iter().position(|&b| b == b'\n') {
                self.consume(pos + 1);
                return Ok(());
            }
            let all = self.buffered().len();
            self.consume(all);
            self.fill(time_left(deadline)?, false)?;
        }
    }

    /// Queues one reply line (without CRLF).
    pub fn queue(&mut self, line: &str) {
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    /// Writes all queued output, waiting up to the write timeout for the
    /// peer to accept it.
    pub fn flush(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + self.write_timeout;
        let mut written = 0;
        while written < self.output.len() {
            match sys::write(self.write_fd, &self.output[written..]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let ready = sys::poll(&[(self.write_fd, libc::POLLOUT)], Some(left))?;
                    if ready[0] == 0 {
                        self.output.drain(..written);
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client does not read replies",
                        ));
                    }
                }
                Err(e) => {
                    self.output.clear();
                    return Err(e);
                }
            }
        }
        self.output.clear();
        Ok(())
    }

    /// Reports whether the server asked to stop without waiting (soft stop).
    pub fn stop_requested(&self) -> bool {
        sys::poll(&[(self.stop.soft, libc::POLLIN)], Some(Duration::ZERO))
            .map(|r| r[0] != 0)
            .unwrap_or(false)
    }

    /// Reports whether the server asked to abort at once (hard stop).
    pub fn abort_requested(&self) -> bool {
        sys::poll(&[(self.stop.hard, libc::POLLIN)], Some(Duration::ZERO))
            .map(|r| r[0] != 0)
            .unwrap_or(false)
    }
}
