//! Relaying a provider's server-sent events without re-encoding them.
//!
//! The provider's bytes are already SSE frames in OpenAI's shape, so the
//! daemon forwards them untouched: [`EventSplitter`] (used by
//! `exchange.rs` on every read of a stream's body) only finds where the last
//! complete event in what has arrived ends (so a frame is never cut in two,
//! and an error event can always follow cleanly) and where the event holding
//! `data: [DONE]` begins (the daemon writes its own). In the common case — a
//! read holding whole events — a chunk goes through without a copy. Parsing
//! each event into a string and writing it out again cost more than the rest
//! of the relay (see README, Performance).
//!
//! An event that arrives over many reads is searched only in its new bytes
//! (each byte is looked at a bounded number of times, so the work is linear
//! in the stream's size), and one event may not grow past the provider's
//! `max_event_bytes`: a runaway provider cannot make the daemon buffer
//! without bound.

use bytes::{Bytes, BytesMut};
use memchr::{memchr, memmem, memrchr};

/// What one read of the upstream body yields.
#[derive(Debug, Default, PartialEq)]
pub struct Split {
    /// Complete events to forward as they are (empty when none completed).
    pub events: Bytes,
    /// The `[DONE]` event was seen: nothing from its event on is forwarded.
    pub done: bool,
}

/// One event grew past the cap before it ended; the stream cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("one event of the stream is larger than max_event_bytes ({max} bytes)")]
pub struct EventTooLarge {
    /// The cap in force.
    pub max: usize,
}

/// Finds event boundaries in a byte stream of server-sent events.
///
/// An event ends with a blank line (`\n\n`, `\r\n\r\n` or `\n\r\n`); the
/// stream begins at the start of a line, as does every event.
#[derive(Debug)]
pub struct EventSplitter {
    /// Bytes of an event that has not been completed yet (never more than
    /// `max_event` between calls).
    pending: BytesMut,
    /// How much of `pending` was already searched: no blank line ends there.
    scanned: usize,
    /// The largest event accepted.
    max_event: usize,
    /// Bytes looked at so far, so tests and the fuzz target can check that
    /// the work stays linear in what was pushed.
    examined: u64,
}

impl EventSplitter {
    /// A splitter that refuses events larger than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            pending: BytesMut::new(),
            scanned: 0,
            max_event,
            examined: 0,
        }
    }

    /// Takes the next chunk of the body; fails when an event is larger than
    /// the cap (then nothing more should be pushed).
    pub fn push(&mut self, chunk: Bytes) -> Result<Split, EventTooLarge> {
        let max = self.max_event;
        let complete = if self.pending.is_empty() {
            let end = complete_end(&chunk, 0, max, &mut self.examined)?;
            let rest = end.unwrap_or(0);
            self.pending.extend_from_slice(&chunk[rest..]);
            end.map(|end| chunk.slice(..end))
        } else {
            self.pending.extend_from_slice(&chunk);
            match complete_end(&self.pending, self.scanned, max, &mut self.examined) {
                Ok(end) => end.map(|end| self.pending.split_to(end).freeze()),
                Err(too_large) => {
                    self.pending = BytesMut::new();
                    self.scanned = 0;
                    return Err(too_large);
                }
            }
        };
        self.scanned = self.pending.len();
        let Some(events) = complete else {
            return Ok(Split::default());
        };
        Ok(match done_event(&events, &mut self.examined) {
            Some(start) => Split {
                events: events.slice(..start),
                done: true,
            },
            None => Split {
                events,
                done: false,
            },
        })
    }

    /// Whether part of an event is waiting for the rest.
    pub fn has_partial(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Bytes of an event waiting for the rest.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes looked at since the splitter was made.
    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }
}

/// Index just past the last blank line of `buf` (which begins an event),
/// searching only for blank lines that end at or after `from`; fails when an
/// event in `buf` is, or the unfinished last one already is, longer than
/// `max`.
fn complete_end(
    buf: &[u8],
    from: usize,
    max: usize,
    examined: &mut u64,
) -> Result<Option<usize>, EventTooLarge> {
    let (mut start, mut from, mut last) = (0, from, None);
    // Only while more than `max` bytes follow the current event's start can
    // an event be too long; then every boundary is needed, in order.
    while buf.len() - start > max {
        let end = next_boundary(buf, from, examined)
            .filter(|end| end - start <= max)
            .ok_or(EventTooLarge { max })?;
        (start, from, last) = (end, end, Some(end));
    }
    Ok(last_boundary(buf, from, examined).or(last))
}

/// Index just past the first blank line ending at or after `from`.
fn next_boundary(buf: &[u8], from: usize, examined: &mut u64) -> Option<usize> {
    let mut at = from;
    while let Some(newline) = memchr(b'\n', &buf[at..]).map(|i| at + i) {
        if ends_blank_line(buf, newline) {
            *examined += (newline + 1 - from) as u64;
            return Some(newline + 1);
        }
        at = newline + 1;
    }
    *examined += (buf.len() - from) as u64;
    None
}

/// Index just past the last blank line ending at or after `from`.
fn last_boundary(buf: &[u8], from: usize, examined: &mut u64) -> Option<usize> {
    let mut end = buf.len();
    while let Some(newline) = memrchr(b'\n', &buf[from..end]).map(|i| from + i) {
        if ends_blank_line(buf, newline) {
            *examined += (buf.len() - newline) as u64;
            return Some(newline + 1);
        }
        end = newline;
    }
    *examined += (buf.len() - from) as u64;
    None
}

/// Whether the `\n` at `newline` ends an empty line; `buf` begins at the
/// start of a line (just after the previous event, or the stream's start).
fn ends_blank_line(buf: &[u8], newline: usize) -> bool {
    match newline {
        0 => true,
        1 => matches!(buf[0], b'\n' | b'\r'),
        _ => buf[newline - 1] == b'\n' || buf[newline - 2..newline] == *b"\n\r",
    }
}

/// Start of the event holding the line `data: [DONE]` (or `data:[DONE]`),
/// if any; `events` are whole events.
fn done_event(events: &[u8], examined: &mut u64) -> Option<usize> {
    *examined += events.len() as u64;
    let line = memmem::find_iter(events, b"[DONE]").find_map(|at| done_line(events, at))?;
    Some(last_boundary(&events[..line], 0, examined).unwrap_or(0))
}

/// Start of the line when the `[DONE]` at `at` is the whole value of a line
/// `data: [DONE]` or `data:[DONE]`.
fn done_line(events: &[u8], at: usize) -> Option<usize> {
    let before = &events[..at];
    let field = before
        .strip_suffix(b"data: ")
        .or_else(|| before.strip_suffix(b"data:"))?;
    let at_line_start = field.is_empty() || field.ends_with(b"\n");
    let line_ends = matches!(events.get(at + 6), Some(b'\n' | b'\r'));
    (at_line_start && line_ends).then_some(field.len())
}

/// Whether `events` carries at least one `data:` line (not only comments).
pub fn has_data(events: &[u8]) -> bool {
    events.starts_with(b"data:") || memmem::find(events, b"\ndata:").is_some()
}

#[cfg(test)]
mod tests;
