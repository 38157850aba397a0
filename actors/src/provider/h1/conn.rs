//! One upstream connection: writing a request, reading an answer's head,
//! and filling its read buffer only once the socket has bytes to give.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::BytesMut;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

use super::Error;
use super::body::Framing;

/// The most headers an answer may have (providers send 10–30).
const MAX_HEADERS: usize = 100;

/// The largest answer head accepted (hyper's default limit is about this).
const MAX_HEAD: usize = 64 * 1024;

/// The most one read takes: a chat completion (0.5–2 KiB) or a burst of
/// stream events fits in one, and a large answer takes few syscalls.
const READ_SIZE: usize = 16 * 1024;

/// An open connection and what has been read on it but not used yet.
pub(super) struct Conn {
    /// The socket.
    pub io: TcpStream,
    /// Bytes read and not yet handed on; empty (no allocation) while the
    /// connection waits for an answer.
    pub buf: BytesMut,
    /// When it last went back to the pool.
    pub idle_since: Instant,
}

/// An answer's head, as far as the daemon reads it.
#[derive(Debug)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// `Content-Type` is `text/event-stream`.
    pub sse: bool,
    /// `Content-Length`, if given.
    pub length: Option<u64>,
    /// Every header, kept only for an answer that is not a success (its
    /// retry hints are read from them); empty otherwise.
    pub headers: HeaderMap,
    /// How the body is framed.
    pub(super) framing: Framing,
    /// Whether the connection may carry another request afterwards.
    pub(super) keep_alive: bool,
}

impl Conn {
    pub fn new(io: TcpStream) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            idle_since: Instant::now(),
        }
    }

    /// Whether an idle connection is still open: a connection the provider
    /// closed (or wrote to unasked) is readable. Costs a syscall only when
    /// the socket was seen readable since its last short read.
    pub fn is_open(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Writes `head` then `body` (one `writev` when the socket takes both).
    pub async fn write(&mut self, head: &[u8], body: &[u8]) -> Result<(), Error> {
        let mut written = 0;
        let total = head.len() + body.len();
        while written < total {
            let slices = if written < head.len() {
                [IoSlice::new(&head[written..]), IoSlice::new(body)]
            } else {
                [
                    IoSlice::new(&body[written - head.len()..]),
                    IoSlice::new(&[]),
                ]
            };
            match self.io.try_write_vectored(&slices) {
                Ok(0) => return Err(Error::Send),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.io.writable().await.map_err(|_| Error::Send)?;
                }
                Err(_) => return Err(Error::Send),
            }
        }
        Ok(())
    }

    /// Reads until an answer's head is complete (skipping `1xx` heads), and
    /// leaves what follows it in the buffer.
    pub async fn read_head(&mut self) -> Result<Head, Error> {
        loop {
            if let Some(head) = self.parse_head()? {
                if (100..200).contains(&head.status) {
                    continue;
                }
                return Ok(head);
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(Error::Protocol("the answer's head is too large"));
            }
            match poll_fn(|cx| self.poll_fill(cx)).await {
                Ok(0) if self.buf.is_empty() => return Err(Error::Closed),
                Ok(0) => return Err(Error::Protocol("the answer ended within its head")),
                Ok(_) => {}
                Err(_) if self.buf.is_empty() => return Err(Error::Closed),
                Err(_) => return Err(Error::Protocol("the connection broke within the head")),
            }
        }
    }

    /// Parses a complete head at the start of the buffer and takes it out.
    fn parse_head(&mut self) -> Result<Option<Head>, Error> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        let length = match parsed.parse(&self.buf) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(Error::Protocol("the answer's head is not HTTP/1.1")),
        };
        let head = head_of(&parsed)?;
        let _ = self.buf.split_to(length);
        Ok(Some(head))
    }

    /// Reads what the socket has into the buffer; `Ok(0)` is its end. The
    /// read goes to the stack first and only what came is kept, so a
    /// connection waiting on a slow provider holds no buffer, and what it
    /// holds after is the size of what arrived. (tokio's `poll_read` forgets
    /// the socket's readiness after a short read, so the next wait costs no
    /// `recv` that would only say `EAGAIN`.)
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut stack = [0u8; READ_SIZE];
        let mut read = ReadBuf::new(&mut stack);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        self.buf.extend_from_slice(read.filled());
        Poll::Ready(Ok(read.filled().len()))
    }
}

/// What the daemon needs of a parsed head.
fn head_of(parsed: &httparse::Response<'_, '_>) -> Result<Head, Error> {
    let status = parsed.code.unwrap_or(0);
    let mut length = None;
    let mut chunked = false;
    let mut close = parsed.version == Some(0);
    let mut sse = false;
    for header in parsed.headers.iter() {
        let name = header.name;
        let value = header.value;
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
            length = Some(parsed.ok_or(Error::Protocol(
                "the answer's Content-Length is not a number",
            ))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = ends_with_token(value, b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close |= has_token(value, b"close");
            if parsed.version == Some(0) && has_token(value, b"keep-alive") {
                close = false;
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            sse = value.len() >= 17 && value[..17].eq_ignore_ascii_case(b"text/event-stream");
        }
    }
    let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
    let framing = match (bodiless, chunked, length) {
        (true, _, _) => Framing::Empty,
        (false, true, _) => Framing::Chunked,
        (false, false, Some(length)) => Framing::Length(length),
        (false, false, None) => Framing::UntilClose,
    };
    let keep_alive = !close && !matches!(framing, Framing::UntilClose);
    let headers = if (200..300).contains(&status) {
        HeaderMap::new()
    } else {
        all_headers(parsed.headers)
    };
    Ok(Head {
        status,
        sse,
        length,
        headers,
        framing,
        keep_alive,
    })
}

/// Whether the comma-separated `value` holds `token`.
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether the last of the comma-separated `value`'s tokens is `token`.
fn ends_with_token(value: &[u8], token: &[u8]) -> bool {
    value
        .rsplit(|b| *b == b',')
        .next()
        .is_some_and(|part| part.trim_ascii().eq_ignore_ascii_case(token))
}

/// The headers as a map (only for an error answer: its retry hints).
fn all_headers(headers: &[httparse::Header<'_>]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for header in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_bytes(header.value),
        ) {
            map.append(name, value);
        }
    }
    map
}
