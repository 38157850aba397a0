//! Fuzz target `answer`: the daemon's own HTTP/1.1 client reading a
//! provider's answer (`switchboard_actors::provider::h1::{head, decode}`,
//! which `provider/h1/conn.rs` and `body.rs` run on every read), on
//! arbitrary bytes cut into arbitrary reads.
//!
//! Input: byte 0 = how many cut bytes follow (0–15), then the cut bytes
//! (each a read of 1–256 bytes, used in turn; none: the whole answer in one
//! read), then the answer as the provider's socket would give it, ending
//! where the connection closes.
//!
//! Checked: no panic; the outcome (status, body, whether it failed) is the
//! same however the bytes were cut into reads; a `Content-Length` body is
//! never longer than announced; the body is never longer than the input.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_actors::provider::h1::decode::{Decoder, Framing, Step};
use switchboard_actors::provider::h1::head::parse_head;

fuzz_target!(|input: &[u8]| {
    let Some((&cut_count, rest)) = input.split_first() else {
        return;
    };
    let cut_count = usize::from(cut_count % 16).min(rest.len());
    let (cuts, answer) = rest.split_at(cut_count);
    let cut = read(answer, cuts);
    let whole = read(answer, &[]);
    assert_eq!(cut, whole, "the outcome depends on how the reads were cut");
    if let Some(Read { framing: Some(Framing::Length(length)), body, .. }) = &cut {
        assert!(body.len() as u64 <= *length, "a body past its Content-Length");
    }
    if let Some(read) = &cut {
        assert!(read.body.len() <= answer.len());
    }
});

/// What reading one answer gave.
#[derive(Debug, PartialEq, Eq)]
struct Read {
    /// The final status, once a head was complete.
    status: Option<u16>,
    /// How its body was framed.
    framing: Option<Framing>,
    /// The body's pieces, joined.
    body: Vec<u8>,
    /// Whether the head or the body was refused, or cut short.
    failed: bool,
}

/// Reads `answer` as the client does, in reads cut by `cuts` (sizes 1–256,
/// in turn; none: one read), then the connection's end. `None` when the
/// answer holds no complete head.
fn read(answer: &[u8], cuts: &[u8]) -> Option<Read> {
    let mut buf = BytesMut::new();
    let mut reads = Reads { answer, cuts, next: 0, at: 0 };
    let mut out = Read { status: None, framing: None, body: Vec::new(), failed: false };
    let mut decoder = None;
    loop {
        if decoder.is_none() {
            match parse_head(&mut buf) {
                Ok(Some(head)) if (100..200).contains(&head.status) => continue,
                Ok(Some(head)) => {
                    out.status = Some(head.status);
                    out.framing = Some(head.framing);
                    decoder = Some(Decoder::new(head.framing));
                }
                Ok(None) => {}
                Err(_) => {
                    out.failed = true;
                    return Some(out);
                }
            }
        }
        if let Some(decoder) = decoder.as_mut() {
            match decoder.step(&mut buf) {
                Ok(Step::Data(piece)) => {
                    out.body.extend_from_slice(&piece);
                    continue;
                }
                Ok(Step::End) => return Some(out),
                Ok(Step::More) => {}
                Err(_) => {
                    out.failed = true;
                    return Some(out);
                }
            }
        }
        match reads.next() {
            Some(piece) => buf.extend_from_slice(piece),
            // The connection closed: a body until close ends there; a head
            // or another body is cut short.
            None => match decoder {
                None if out.status.is_none() => return None,
                Some(decoder) if decoder.until_close() => return Some(out),
                _ => {
                    out.failed = true;
                    return Some(out);
                }
            },
        }
    }
}

/// The answer in reads of the sizes `cuts` gives, in turn.
struct Reads<'a> {
    answer: &'a [u8],
    cuts: &'a [u8],
    next: usize,
    at: usize,
}

impl<'a> Reads<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.at >= self.answer.len() {
            return None;
        }
        let size = match self.cuts {
            [] => self.answer.len(),
            cuts => usize::from(cuts[self.next % cuts.len()]) + 1,
        };
        self.next += 1;
        let end = (self.at + size).min(self.answer.len());
        let piece = &self.answer[self.at..end];
        self.at = end;
        Some(piece)
    }
}
