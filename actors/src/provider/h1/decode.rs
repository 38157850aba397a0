//! An answer body's framing, decoded over whatever has been read so far:
//! `Content-Length`, chunked, or until the connection closes. Pieces are
//! split off the read buffer without copying. Knows nothing of sockets, so
//! it is fuzzed as it is (`fuzz/fuzz_targets/answer.rs`).

use bytes::{Buf, Bytes, BytesMut};

/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// How a body is framed, from its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (`204`, `304`).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Whatever comes until the provider closes the connection.
    UntilClose,
}

/// Where the decoder is.
#[derive(Clone, Copy, Debug)]
pub(super) enum State {
    /// So many bytes left of a `Content-Length` body.
    Length(u64),
    /// Before a chunk's size line.
    Size,
    /// So many bytes left of the current chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
    /// Reading until the connection closes.
    UntilClose,
    /// All read.
    Done,
}

/// What one step of decoding gave.
pub enum Step {
    /// A piece of the body.
    Data(Bytes),
    /// More bytes must be read first.
    More,
    /// The body is complete.
    End,
}

/// Where a body's decoding is.
#[derive(Clone, Copy, Debug)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(length) => State::Length(length),
            Framing::Chunked => State::Size,
            Framing::UntilClose => State::UntilClose,
        };
        Self { state }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the body ends where the connection does.
    pub fn until_close(&self) -> bool {
        matches!(self.state, State::UntilClose)
    }

    /// Marks the body complete (it ended with its connection, or failed).
    pub fn end(&mut self) {
        self.state = State::Done;
    }

    /// One decoding step over what has been read.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, &'static str> {
        loop {
            match self.state {
                State::Done => return Ok(Step::End),
                State::Length(_) | State::Data(_) | State::UntilClose if buf.is_empty() => {
                    return Ok(Step::More);
                }
                State::Length(left) => {
                    let take = left.min(buf.len() as u64);
                    self.state = match left - take {
                        0 => State::Done,
                        left => State::Length(left),
                    };
                    return Ok(Step::Data(buf.split_to(take as usize).freeze()));
                }
                State::UntilClose => return Ok(Step::Data(buf.split().freeze())),
                State::Data(left) => {
                    let take = left.min(buf.len() as u64);
                    self.state = match left - take {
                        0 => State::DataEnd,
                        left => State::Data(left),
                    };
                    return Ok(Step::Data(buf.split_to(take as usize).freeze()));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("a chunk did not end with CRLF");
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::More);
                    };
                    self.state = match chunk_size(&line)? {
                        0 => State::Trailers,
                        size => State::Data(size),
                    };
                }
                State::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::More);
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                    }
                }
            }
        }
    }
}

/// Takes one CRLF-terminated line off the front of `buf` (without the
/// CRLF), or `None` when it is not all there yet.
fn take_line(buf: &mut BytesMut) -> Result<Option<Bytes>, &'static str> {
    let seen = buf.len().min(MAX_LINE + 2);
    match buf[..seen].windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let line = buf.split_to(end).freeze();
            buf.advance(2);
            Ok(Some(line))
        }
        // Too long whether or not its end is there yet, so the outcome does
        // not depend on how the answer was cut into reads.
        None if buf.len() > MAX_LINE + 1 => Err("a chunk's size line is too long"),
        None => Ok(None),
    }
}

/// A chunk's size from its line (extensions after `;` are ignored).
fn chunk_size(line: &[u8]) -> Result<u64, &'static str> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let text = std::str::from_utf8(digits).map_err(|_| "a chunk's size is not hexadecimal")?;
    if text.is_empty() || text.len() > 15 {
        return Err("a chunk's size is not hexadecimal");
    }
    u64::from_str_radix(text, 16).map_err(|_| "a chunk's size is not hexadecimal")
}
