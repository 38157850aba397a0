//! An answer's head: parsed with httparse, and reduced to what the daemon
//! decides on (status, framing, keep-alive, event stream) plus, for an
//! answer that is not a success, its headers (their retry hints).

use bytes::BytesMut;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use super::Error;
use super::decode::Framing;

/// The most headers an answer may have (providers send 10–30).
const MAX_HEADERS: usize = 100;

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
    pub framing: Framing,
    /// Whether the connection may carry another request afterwards.
    pub keep_alive: bool,
}

/// Parses a complete head at the start of the buffer and takes it out.
pub fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let length = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Error::Protocol("the answer's head is not HTTP/1.1")),
    };
    let head = head_of(&parsed)?;
    let _ = buf.split_to(length);
    Ok(Some(head))
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
