//! Relaying a provider's server-sent events without re-encoding them.
//!
//! The provider's bytes are already SSE frames in OpenAI's shape, so the
//! daemon forwards them untouched: [`EventSplitter`] only finds where the
//! last complete event in what has arrived ends (so a frame is never cut in
//! two, and an error event can always follow cleanly) and where the
//! `data: [DONE]` event is (the daemon writes its own). In the common case —
//! a read holding whole events — a chunk goes through without a copy.
//! Parsing each event into a string and writing it out again cost more than
//! the rest of the relay (see README, Performance).

use bytes::{Bytes, BytesMut};
use memchr::{memmem, memrchr};

/// What one read of the upstream body yields.
#[derive(Debug, Default, PartialEq)]
pub struct Split {
    /// Complete events to forward as they are (empty when none completed).
    pub events: Bytes,
    /// The `[DONE]` event was seen: nothing after it is forwarded.
    pub done: bool,
}

/// Finds event boundaries in a byte stream of server-sent events.
#[derive(Debug, Default)]
pub struct EventSplitter {
    /// Bytes of an event that has not been completed yet.
    pending: BytesMut,
}

impl EventSplitter {
    /// Takes the next chunk of the body.
    pub fn push(&mut self, chunk: Bytes) -> Split {
        let data = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(&chunk);
            self.pending.split().freeze()
        };
        let Some(end) = last_boundary(&data) else {
            self.pending.extend_from_slice(&data);
            return Split::default();
        };
        if end < data.len() {
            self.pending.extend_from_slice(&data[end..]);
        }
        let complete = data.slice(..end);
        match done_event(&complete) {
            Some(start) => Split {
                events: complete.slice(..start),
                done: true,
            },
            None => Split {
                events: complete,
                done: false,
            },
        }
    }

    /// Whether part of an event is waiting for the rest.
    pub fn has_partial(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Index just past the last blank line (`\n\n` or `\r\n\r\n`) in `data`.
fn last_boundary(data: &[u8]) -> Option<usize> {
    let mut end = data.len();
    while let Some(newline) = memrchr(b'\n', &data[..end]) {
        let before = &data[..newline];
        let blank = before.ends_with(b"\n") || before.ends_with(b"\n\r");
        if blank {
            return Some(newline + 1);
        }
        end = newline;
    }
    None
}

/// Start of the line holding `data: [DONE]` (or `data:[DONE]`), if any.
fn done_event(events: &[u8]) -> Option<usize> {
    let finder = memmem::Finder::new(b"[DONE]");
    let mut from = 0;
    while let Some(found) = finder.find(&events[from..]) {
        let at = from + found;
        let line_start = memrchr(b'\n', &events[..at]).map_or(0, |i| i + 1);
        let prefix = &events[line_start..at];
        if prefix == b"data: " || prefix == b"data:" {
            return Some(line_start);
        }
        from = at + 1;
    }
    None
}

/// Whether `events` carries at least one `data:` line (not only comments).
pub fn has_data(events: &[u8]) -> bool {
    events.starts_with(b"data:") || memmem::find(events, b"\ndata:").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_all(chunks: &[&str]) -> (Vec<String>, bool) {
        let mut splitter = EventSplitter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            let split = splitter.push(Bytes::copy_from_slice(chunk.as_bytes()));
            if !split.events.is_empty() {
                out.push(String::from_utf8(split.events.to_vec()).unwrap());
            }
            if split.done {
                return (out, true);
            }
        }
        (out, false)
    }

    #[test]
    fn whole_events_pass_through_untouched() {
        let (out, done) = push_all(&["data: {\"a\":1}\n\ndata: {\"b\":2}\n\n"]);
        assert_eq!(out, ["data: {\"a\":1}\n\ndata: {\"b\":2}\n\n"]);
        assert!(!done);
    }

    #[test]
    fn an_event_split_across_reads_is_forwarded_once_complete() {
        let body = "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        for cut in 1..body.len() {
            let (out, done) = push_all(&[&body[..cut], &body[cut..]]);
            assert_eq!(
                out.concat(),
                "data: {\"a\":1}\n\ndata: {\"b\":2}\n\n",
                "cut at {cut}"
            );
            assert!(done, "cut at {cut}");
        }
    }

    #[test]
    fn crlf_events_and_comments_are_understood() {
        let (out, done) = push_all(&[": ping\r\n\r\ndata: x\r\n\r\ndata:[DONE]\r\n\r\n"]);
        assert_eq!(out, [": ping\r\n\r\ndata: x\r\n\r\n"]);
        assert!(done);
        assert!(!has_data(b": ping\n\n"));
        assert!(has_data(b": ping\n\ndata: x\n\n"));
    }

    #[test]
    fn done_inside_content_is_not_the_end() {
        let (out, done) = push_all(&["data: {\"content\":\"[DONE]\"}\n\n"]);
        assert_eq!(out.len(), 1);
        assert!(!done);
    }
}
