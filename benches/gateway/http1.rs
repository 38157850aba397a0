//! The load client's HTTP/1.1 connection: hand-written on `httparse` so a
//! request costs one `write` and usually one `read`, over a Unix socket (the
//! daemon) or loopback TCP (the fake provider directly) with the same code.
//!
//! It reads `Content-Length` and chunked bodies, checks each answer (status
//! 200, a complete chat-completion JSON or another route's object, or an
//! SSE stream whose `data:` events it counts and times) and reports
//! anything else as a [`Failure`]. The requests it sends are built once,
//! by [`crate::requests`].

use std::fmt;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use crate::net::{Stream, Target};

/// Initial read buffer of a connection; it grows only for a larger answer.
const BUFFER: usize = 4096;

/// Why a request did not count as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    /// The connection could not be opened.
    Connect,
    /// Writing the request failed.
    Write,
    /// Reading the answer failed.
    Read,
    /// The peer closed the connection before the answer was complete.
    Closed,
    /// No complete answer within the per-request time limit.
    Timeout,
    /// An answer with this status instead of 200.
    Status(u16),
    /// A 200 whose head or body was not what was expected.
    Malformed(&'static str),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect => f.write_str("connect failed"),
            Failure::Write => f.write_str("write failed"),
            Failure::Read => f.write_str("read failed"),
            Failure::Closed => f.write_str("closed mid-answer"),
            Failure::Timeout => f.write_str("timed out"),
            Failure::Status(code) => write!(f, "status {code}"),
            Failure::Malformed(what) => write!(f, "malformed: {what}"),
        }
    }
}

/// What a successful answer must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A `chat.completion` JSON object; `session`: with the daemon's
    /// `session` object in it.
    Completion {
        /// Whether the body must carry a `"session"` key.
        session: bool,
    },
    /// Another route's JSON object (a message, embeddings), told by a key
    /// only its answers carry, quoted as it appears: `"\"data\""`.
    Object {
        /// The quoted key.
        key: &'static str,
        /// Whether the body must carry a `"session"` key.
        session: bool,
    },
    /// A server-sent-event stream ending in `data: [DONE]`.
    Events,
    /// Any 200 (health checks).
    Any,
}

/// A successful answer.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    /// When the first complete `data:` event arrived (streams only).
    pub first_event: Option<Instant>,
}

/// Counts and times the `data:` lines of an SSE body as it arrives.
#[derive(Default)]
struct SseScan {
    /// The unfinished last line of the data seen so far.
    carry: Vec<u8>,
    /// Complete `data:` lines so far.
    events: u32,
    /// Whether `data: [DONE]` was seen.
    done: bool,
    /// When the first `data:` line was complete.
    first: Option<Instant>,
}

impl SseScan {
    /// Takes the next piece of the body.
    fn feed(&mut self, mut data: &[u8]) {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            if self.carry.is_empty() {
                self.line(&data[..nl]);
            } else {
                let mut line = std::mem::take(&mut self.carry);
                line.extend_from_slice(&data[..nl]);
                self.line(&line);
            }
            data = &data[nl + 1..];
        }
        self.carry.extend_from_slice(data);
    }

    /// Looks at one complete line.
    fn line(&mut self, line: &[u8]) {
        if let Some(rest) = line.strip_prefix(b"data:") {
            self.events += 1;
            if self.first.is_none() {
                self.first = Some(Instant::now());
            }
            if rest.trim_ascii() == b"[DONE]" {
                self.done = true;
            }
        }
    }
}

/// Where an answer's body goes while it is read.
struct Sink {
    /// The whole body, for JSON checks.
    body: Vec<u8>,
    /// The event scanner, for streams.
    sse: Option<SseScan>,
}

impl Sink {
    /// Takes the next piece of the body.
    fn feed(&mut self, data: &[u8]) {
        match &mut self.sse {
            Some(scan) => scan.feed(data),
            None => self.body.extend_from_slice(data),
        }
    }
}

/// How the body of an answer is delimited.
enum Framing {
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// One persistent client connection.
pub struct Conn {
    /// The socket.
    io: Stream,
    /// Read buffer; unread bytes are `buf[start..end]`.
    buf: Vec<u8>,
    /// Start of the unread bytes.
    start: usize,
    /// End of the unread bytes.
    end: usize,
    /// Reused body buffer.
    body: Vec<u8>,
    /// False once the server said `Connection: close` or a request failed.
    pub reusable: bool,
    /// `data:` events of the last stream read, complete or not.
    pub last_events: u32,
}

impl Conn {
    /// Wraps an open stream.
    pub fn new(io: Stream) -> Conn {
        Conn {
            io,
            buf: vec![0; BUFFER],
            start: 0,
            end: 0,
            body: Vec::new(),
            reusable: true,
            last_events: 0,
        }
    }

    /// Sends `request` (a complete HTTP/1.1 request) and reads its answer.
    pub async fn exchange(&mut self, request: &[u8], expect: Expect) -> Result<Reply, Failure> {
        self.send(request).await?;
        self.receive(expect).await
    }

    /// Writes a complete request.
    pub async fn send(&mut self, request: &[u8]) -> Result<(), Failure> {
        let written = self.io.write_all(request).await;
        written.map_err(|_| self.fail(Failure::Write))
    }

    /// Reads one answer and checks it against `expect`.
    pub async fn receive(&mut self, expect: Expect) -> Result<Reply, Failure> {
        let result = self.read_answer(expect).await;
        if result.is_err() {
            self.reusable = false;
        }
        result
    }

    /// Marks the connection unusable and passes `failure` on.
    fn fail(&mut self, failure: Failure) -> Failure {
        self.reusable = false;
        failure
    }

    /// Reads more bytes into the buffer (making room first).
    async fn fill(&mut self) -> Result<(), Failure> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        match self.io.read(&mut self.buf[self.end..]).await {
            Ok(0) => Err(Failure::Closed),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(_) => Err(Failure::Read),
        }
    }

    /// Reads the head, then the body, then judges them.
    async fn read_answer(&mut self, expect: Expect) -> Result<Reply, Failure> {
        let (status, framing, close) = self.read_head().await?;
        let mut sink = Sink {
            body: std::mem::take(&mut self.body),
            sse: (expect == Expect::Events && status == 200).then(SseScan::default),
        };
        sink.body.clear();
        let read = match framing {
            Framing::Length(n) => self.read_length(n, &mut sink).await,
            Framing::Chunked => self.read_chunked(&mut sink).await,
        };
        let verdict = read.and_then(|()| judge(status, expect, &sink));
        self.last_events = sink.sse.as_ref().map_or(0, |scan| scan.events);
        self.body = sink.body;
        if close {
            self.reusable = false;
        }
        verdict
    }

    /// Parses the status line and headers.
    async fn read_head(&mut self) -> Result<(u16, Framing, bool), Failure> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf[self.start..self.end]) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut close = resp.version == Some(0);
                    let mut framing = None;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let n = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.parse().ok());
                            framing = Some(Framing::Length(n.ok_or(Failure::Malformed("length"))?));
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            framing = Some(Framing::Chunked);
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close |= h.value.eq_ignore_ascii_case(b"close");
                        }
                    }
                    self.start += n;
                    return Ok((
                        status,
                        framing.ok_or(Failure::Malformed("no framing"))?,
                        close,
                    ));
                }
                Ok(httparse::Status::Partial) => self.fill().await?,
                Err(_) => return Err(Failure::Malformed("response head")),
            }
        }
    }

    /// Reads a body of exactly `n` bytes.
    async fn read_length(&mut self, mut n: usize, sink: &mut Sink) -> Result<(), Failure> {
        loop {
            let take = n.min(self.end - self.start);
            sink.feed(&self.buf[self.start..self.start + take]);
            self.start += take;
            n -= take;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// Reads a chunked body up to and including its last-chunk and trailers.
    async fn read_chunked(&mut self, sink: &mut Sink) -> Result<(), Failure> {
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.start += used;
                        break size as usize;
                    }
                    Ok(httparse::Status::Partial) => self.fill().await?,
                    Err(_) => return Err(Failure::Malformed("chunk size")),
                }
            };
            if size == 0 {
                return self.skip_trailers().await;
            }
            self.read_length(size, sink).await?;
            while self.end - self.start < 2 {
                self.fill().await?;
            }
            if &self.buf[self.start..self.start + 2] != b"\r\n" {
                return Err(Failure::Malformed("chunk end"));
            }
            self.start += 2;
        }
    }

    /// Skips trailer lines up to the empty line that ends a chunked body.
    async fn skip_trailers(&mut self) -> Result<(), Failure> {
        loop {
            let unread = &self.buf[self.start..self.end];
            match unread.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.start += 2;
                    return Ok(());
                }
                Some(at) => self.start += at + 2,
                None => self.fill().await?,
            }
        }
    }
}

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Decides whether a fully read answer is a success.
fn judge(status: u16, expect: Expect, sink: &Sink) -> Result<Reply, Failure> {
    if status != 200 {
        return Err(Failure::Status(status));
    }
    match expect {
        Expect::Any => Ok(Reply { first_event: None }),
        Expect::Completion { session } => {
            json_object(&sink.body, "\"choices\"", session, "not a chat completion")
        }
        Expect::Object { key, session } => {
            json_object(&sink.body, key, session, "not the route's object")
        }
        Expect::Events => {
            let scan = sink.sse.as_ref().ok_or(Failure::Malformed("no stream"))?;
            if !scan.done {
                return Err(Failure::Malformed("stream without [DONE]"));
            }
            Ok(Reply {
                first_event: scan.first,
            })
        }
    }
}

/// Whether `body` is a JSON object with the quoted `key` (and the daemon's
/// `session` object, if asked); `wrong` says what it was not.
fn json_object(
    body: &[u8],
    key: &str,
    session: bool,
    wrong: &'static str,
) -> Result<Reply, Failure> {
    let body = body.trim_ascii();
    let object = body.first() == Some(&b'{') && body.last() == Some(&b'}');
    if !object || !contains(body, key.as_bytes()) {
        return Err(Failure::Malformed(wrong));
    }
    if session && !contains(body, b"\"session\"") {
        return Err(Failure::Malformed("no session object"));
    }
    Ok(Reply { first_event: None })
}
