//! An answer's body on the daemon's own client: its framing decoded
//! (`Content-Length`, chunked, or until the connection closes) into the
//! pieces as they arrive, without copying them.
//!
//! Once the body has been read to its end, its connection goes back to the
//! pool; a body dropped before that closes its connection, which is how an
//! ended session aborts its upstream call.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::Stream;

use super::conn::Conn;
use super::pool::Shared;

/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// How a body is framed, from its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
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
enum State {
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
enum Step {
    /// A piece of the body.
    Data(Bytes),
    /// More bytes must be read first.
    More,
    /// The body is complete.
    End,
}

/// A body being read; a stream of its pieces.
pub struct Body {
    /// The connection, until the body ends or fails.
    conn: Option<Conn>,
    /// The decoder's state.
    state: State,
    /// Whether the connection may be pooled once the body is read.
    keep_alive: bool,
    /// The pool it returns to.
    pool: Arc<Shared>,
}

impl Body {
    pub(super) fn new(conn: Conn, framing: Framing, keep_alive: bool, pool: Arc<Shared>) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(length) => State::Length(length),
            Framing::Chunked => State::Size,
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = Self {
            conn: Some(conn),
            state,
            keep_alive,
            pool,
        };
        if matches!(body.state, State::Done) {
            body.finished();
        }
        body
    }

    /// The body is complete: its connection goes back to the pool if it can
    /// carry another request (nothing unread is left on it).
    fn finished(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            self.pool.put_back(conn);
        }
    }

    /// One decoding step over what has been read.
    fn step(&mut self) -> Result<Step, &'static str> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Step::End);
        };
        let buf = &mut conn.buf;
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
fn take_line(buf: &mut bytes::BytesMut) -> Result<Option<Bytes>, &'static str> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let line = buf.split_to(end).freeze();
            buf.advance(2);
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err("a chunk's size line is too long"),
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

impl Stream for Body {
    type Item = Result<Bytes, &'static str>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match this.step() {
                Ok(Step::Data(data)) => {
                    if matches!(this.state, State::Done) {
                        this.finished();
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Ok(Step::End) => {
                    this.finished();
                    return Poll::Ready(None);
                }
                Ok(Step::More) => {}
                Err(why) => return Poll::Ready(Some(Err(this.fail(why)))),
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if matches!(this.state, State::UntilClose) => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) | Err(_) => {
                    let why = "the connection broke while reading the answer";
                    return Poll::Ready(Some(Err(this.fail(why))));
                }
                Ok(_) => {}
            }
        }
    }
}

impl Body {
    /// The body cannot be read on: its connection is closed, and the stream
    /// ends after this error.
    fn fail(&mut self, why: &'static str) -> &'static str {
        self.conn = None;
        self.state = State::Done;
        why
    }

    /// Whether the whole body has been read.
    pub fn is_end(&self) -> bool {
        matches!(self.state, State::Done)
    }
}
