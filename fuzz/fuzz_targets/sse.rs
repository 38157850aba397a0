//! Fuzz target `sse`: the stream event splitter
//! (`switchboard_actors::provider::sse::EventSplitter`, which
//! `provider/exchange.rs` runs on every read of an upstream stream) on
//! arbitrary bytes cut into arbitrary reads, checked against a line-by-line
//! reference reading of the same bytes.
//!
//! Input: byte 0 = how many cut bytes follow (0–15), byte 1 picks the cap
//! (16 B to 64 KiB), then the cut bytes (each a read of 1–256 bytes, used in
//! turn; none: the whole stream in one read), then the stream.
//!
//! Checked: no panic; what is forwarded is whole events, equal to the
//! stream's events up to the one holding `data: [DONE]`; the splitter
//! refuses the stream only when an event (or the unfinished tail) is over
//! the cap; what it holds never exceeds the cap; it looks at each byte at
//! most three times (linear work).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_actors::provider::sse::EventSplitter;

/// Bound on bytes examined per byte pushed: each byte is searched once for
/// a blank line, and once more (at most twice) in a completed event for
/// `[DONE]` and its event's start (the same bound as the unit test).
const WORK_PER_BYTE: u64 = 3;

fuzz_target!(|input: &[u8]| {
    let Some((&cut_count, rest)) = input.split_first() else {
        return;
    };
    let Some((&cap_pick, rest)) = rest.split_first() else {
        return;
    };
    let cut_count = usize::from(cut_count % 16).min(rest.len());
    let (cuts, stream) = rest.split_at(cut_count);
    let max = 16usize << (cap_pick % 13);
    check(stream, cuts, max);
});

/// What the splitter did with the whole stream.
struct Outcome {
    /// Everything it forwarded, in order.
    forwarded: Vec<u8>,
    /// It saw `[DONE]`.
    done: bool,
    /// It refused an event as too large.
    refused: bool,
}

fn check(stream: &[u8], cuts: &[u8], max: usize) {
    let outcome = run(stream, cuts, max);
    let reference = Reference::read(stream);
    let before_done = reference.events_before_done();
    let expected: Vec<u8> = before_done.concat();
    if outcome.refused {
        assert!(
            reference.any_over(max),
            "refused though no event is over {max} bytes"
        );
        assert!(
            expected.starts_with(&outcome.forwarded),
            "forwarded bytes are not a prefix of the events"
        );
        assert!(
            is_event_prefix(&before_done, outcome.forwarded.len()),
            "forwarded part of an event"
        );
        return;
    }
    assert_eq!(
        outcome.done,
        reference.done_at.is_some(),
        "[DONE] seen wrongly"
    );
    assert!(
        outcome.forwarded == expected,
        "forwarded {} bytes, the events before [DONE] are {} bytes",
        outcome.forwarded.len(),
        expected.len()
    );
    if !outcome.done {
        assert!(
            reference.events.iter().all(|e| e.len() <= max) && reference.tail.len() <= max,
            "an event over {max} bytes was accepted"
        );
    }
}

/// Pushes `stream` in reads sized by `cuts`, as `exchange.rs` does: it stops
/// at `[DONE]` or a refusal.
fn run(stream: &[u8], cuts: &[u8], max: usize) -> Outcome {
    let mut splitter = EventSplitter::new(max);
    let mut outcome = Outcome {
        forwarded: Vec::new(),
        done: false,
        refused: false,
    };
    let (mut at, mut pushed) = (0, 0u64);
    for read in 0.. {
        if at == stream.len() {
            break;
        }
        let len = match cuts {
            [] => stream.len(),
            cuts => usize::from(cuts[read % cuts.len()]) + 1,
        };
        let end = (at + len).min(stream.len());
        pushed += (end - at) as u64;
        let split = splitter.push(Bytes::copy_from_slice(&stream[at..end]));
        at = end;
        let Ok(split) = split else {
            outcome.refused = true;
            break;
        };
        outcome.forwarded.extend_from_slice(&split.events);
        assert!(splitter.pending_len() <= max, "holds more than the cap");
        assert!(
            splitter.bytes_examined() <= WORK_PER_BYTE * pushed,
            "looked at {} bytes for {pushed} pushed",
            splitter.bytes_examined()
        );
        if split.done {
            outcome.done = true;
            break;
        }
    }
    outcome
}

/// The stream read line by line, the simple way: an event is the lines up
/// to and including a blank one (empty, or a lone `\r` before its `\n`).
struct Reference<'a> {
    /// Complete events, each with its blank line.
    events: Vec<&'a [u8]>,
    /// The unfinished last event.
    tail: &'a [u8],
    /// Index of the first event with a `data: [DONE]` line.
    done_at: Option<usize>,
}

impl<'a> Reference<'a> {
    fn read(stream: &'a [u8]) -> Self {
        let (mut events, mut start, mut done_at, mut done_here) = (Vec::new(), 0, None, false);
        let mut line_start = 0;
        for (i, &byte) in stream.iter().enumerate() {
            if byte != b'\n' {
                continue;
            }
            let line = &stream[line_start..i];
            line_start = i + 1;
            done_here |= is_done_line(line);
            if line.is_empty() || line == b"\r" {
                if done_here && done_at.is_none() {
                    done_at = Some(events.len());
                }
                events.push(&stream[start..=i]);
                start = i + 1;
                done_here = false;
            }
        }
        Reference {
            events,
            tail: &stream[start..],
            done_at,
        }
    }

    fn events_before_done(&self) -> Vec<&'a [u8]> {
        let end = self.done_at.unwrap_or(self.events.len());
        self.events[..end].to_vec()
    }

    /// Whether anything the splitter may have seen is over `max`: it may
    /// read past the `[DONE]` event within the read that holds it.
    fn any_over(&self, max: usize) -> bool {
        self.events.iter().any(|e| e.len() > max) || self.tail.len() > max
    }
}

/// `data: [DONE]` or `data:[DONE]`, the value ending the line or followed
/// by a `\r` (a line break too in SSE).
fn is_done_line(line: &[u8]) -> bool {
    [&b"data: [DONE]"[..], b"data:[DONE]"].iter().any(|done| {
        line.strip_prefix(*done)
            .is_some_and(|after| after.is_empty() || after[0] == b'\r')
    })
}

/// Whether the first `len` bytes of the events' concatenation end at the end
/// of an event.
fn is_event_prefix(events: &[&[u8]], len: usize) -> bool {
    let mut end = 0;
    for event in events {
        if end == len {
            return true;
        }
        end += event.len();
    }
    end == len
}
