//! Low-level client helpers for talking to the daemon in tests.
//!
//! Integration tests use [`raw_post`] / [`read_head`] when they must drop a
//! Unix-socket connection at a precise moment (dropping the returned stream
//! closes it), and [`SseReader`] to read a streaming reply event by event as
//! it arrives.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The most header bytes [`read_head`] accepts before giving up.
const MAX_HEAD: usize = 64 * 1024;

/// Connects to `socket` and sends `method path` with `body`, a
/// `Content-Length`, `Host: localhost` and `headers`; returns the stream
/// without reading anything (dropping it closes the connection).
///
/// Panics with the socket path if connecting or writing fails.
pub async fn raw_request(
    socket: &Path,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> UnixStream {
    let mut stream = UnixStream::connect(socket)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("writing a request to {}: {e}", socket.display()));
    stream
}

/// [`raw_request`] with `POST` (add `("content-type", "application/json")`
/// to `headers` for JSON bodies).
pub async fn raw_post(
    socket: &Path,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> UnixStream {
    raw_request(socket, "POST", path, body, headers).await
}

/// Reads an HTTP/1.1 response's status line and headers, and nothing more
/// (the body stays unread in `stream`). Header names are lower-cased.
///
/// Panics if the connection ends first or the head is malformed.
pub async fn read_head(stream: &mut UnixStream) -> (u16, Vec<(String, String)>) {
    let head = read_until_blank_line(stream).await;
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status_line(status_line)
        .unwrap_or_else(|| panic!("malformed HTTP status line {status_line:?}"));
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("malformed HTTP header line {line:?}"));
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    (status, headers)
}

/// Reads byte by byte up to and including `\r\n\r\n` (so no body byte is
/// consumed), returning the head without the final blank line.
async fn read_until_blank_line(stream: &mut UnixStream) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    loop {
        let byte = stream.read_u8().await.unwrap_or_else(|e| {
            panic!(
                "connection ended while reading a response head: {e}; got {:?}",
                String::from_utf8_lossy(&head)
            )
        });
        head.push(byte);
        if head.ends_with(b"\r\n\r\n") {
            head.truncate(head.len() - 4);
            return head;
        }
        assert!(
            head.len() <= MAX_HEAD,
            "response head longer than {MAX_HEAD} bytes"
        );
    }
}

/// The status code of `HTTP/1.x NNN reason`.
fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Reads server-sent events from a streaming reqwest response as they arrive.
#[derive(Debug)]
pub struct SseReader {
    /// The response whose body is being read.
    response: reqwest::Response,
    /// Bytes received but not yet returned as events.
    buffer: Vec<u8>,
    /// Why the body ended early, if it failed (e.g. an upstream cut).
    error: Option<String>,
    /// Whether the body has ended.
    done: bool,
}

impl SseReader {
    /// Wraps a response (its status and headers are not checked).
    pub fn new(response: reqwest::Response) -> SseReader {
        SseReader {
            response,
            buffer: Vec::new(),
            error: None,
            done: false,
        }
    }

    /// The next event's `data:` payload (several `data:` lines joined by
    /// `\n`), waiting for it to arrive; events without data (comments,
    /// keep-alives) are skipped. `None` once the body ends or fails; an
    /// unterminated final event is not returned (see [`SseReader::rest`]).
    pub async fn next_event(&mut self) -> Option<String> {
        loop {
            if let Some(event) = self.take_event() {
                match data_of(&event) {
                    Some(data) => return Some(data),
                    None => continue,
                }
            }
            if self.done {
                return None;
            }
            self.fill().await;
        }
    }

    /// Reads every remaining event until the body ends.
    pub async fn collect(mut self) -> (Vec<String>, Option<String>) {
        let mut events = Vec::new();
        while let Some(event) = self.next_event().await {
            events.push(event);
        }
        (events, self.error)
    }

    /// Why the body failed, if it did (`None` after a clean end).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Bytes received after the last complete event.
    pub fn rest(&self) -> &[u8] {
        &self.buffer
    }

    /// Removes and returns the next complete raw event, if buffered.
    fn take_event(&mut self) -> Option<String> {
        let (end, sep) = find_event_end(&self.buffer)?;
        let event: Vec<u8> = self.buffer.drain(..end + sep).take(end).collect();
        Some(String::from_utf8_lossy(&event).into_owned())
    }

    /// Appends the next body chunk to the buffer, or notes the end.
    async fn fill(&mut self) {
        match self.response.chunk().await {
            Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
            Ok(None) => self.done = true,
            Err(e) => {
                self.error = Some(format!("{e:?}"));
                self.done = true;
            }
        }
    }
}

/// Where the first event in `buf` ends and how long its separator is
/// (`\n\n` or `\r\n\r\n`).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The joined `data:` lines of one raw event, or `None` if it has none.
fn data_of(event: &str) -> Option<String> {
    let data: Vec<&str> = event
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    (!data.is_empty()).then(|| data.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_blank_lines_and_join_data_lines() {
        assert_eq!(find_event_end(b"data: a\n\ndata: b\n\n"), Some((7, 2)));
        assert_eq!(find_event_end(b"data: a\r\n\r\n"), Some((7, 4)));
        assert_eq!(find_event_end(b"data: a\n"), None);
        assert_eq!(data_of("data: a\ndata:b").as_deref(), Some("a\nb"));
        assert_eq!(data_of(": keep-alive"), None);
        assert_eq!(
            data_of("event: x\r\ndata: [DONE]").as_deref(),
            Some("[DONE]")
        );
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status_line("HTTP/1.1 503"), Some(503));
        assert_eq!(parse_status_line("garbage"), None);
    }
}
