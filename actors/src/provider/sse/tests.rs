//! Unit tests of the event splitter: boundaries and `[DONE]` wherever the
//! reads cut them, the cap on one event, and work linear in the input.

use super::*;

/// A cap far above every event of these tests.
const ROOMY: usize = 1 << 20;

/// Pushes `chunks` in order; returns the non-empty splits' events and
/// whether `[DONE]` was seen (pushing stops there).
fn push_all(chunks: &[&str]) -> (Vec<String>, bool) {
    let mut splitter = EventSplitter::new(ROOMY);
    let mut out = Vec::new();
    for chunk in chunks {
        let split = splitter
            .push(Bytes::copy_from_slice(chunk.as_bytes()))
            .expect("no event here is over the cap");
        if !split.events.is_empty() {
            out.push(String::from_utf8(split.events.to_vec()).unwrap());
        }
        if split.done {
            return (out, true);
        }
    }
    (out, false)
}

/// Every way of cutting `body` into three reads.
fn three_way_cuts(body: &str) -> impl Iterator<Item = [&str; 3]> {
    (0..=body.len())
        .flat_map(move |a| (a..=body.len()).map(move |b| [&body[..a], &body[a..b], &body[b..]]))
}

#[test]
fn whole_events_pass_through_untouched() {
    let (out, done) = push_all(&["data: {\"a\":1}\n\ndata: {\"b\":2}\n\n"]);
    assert_eq!(out, ["data: {\"a\":1}\n\ndata: {\"b\":2}\n\n"]);
    assert!(!done);
}

#[test]
fn a_read_of_whole_events_is_forwarded_without_a_copy() {
    let chunk = Bytes::from_static(b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n");
    let mut splitter = EventSplitter::new(ROOMY);
    let split = splitter.push(chunk.clone()).unwrap();
    assert_eq!(split.events.as_ptr(), chunk.as_ptr());
    assert!(!splitter.has_partial());
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
fn a_blank_line_that_straddles_reads_still_ends_the_event() {
    for blank in ["\n\n", "\r\n\r\n", "\n\r\n"] {
        let body = format!("data: a{blank}data: b{blank}: tail");
        let events = format!("data: a{blank}data: b{blank}");
        for cuts in three_way_cuts(&body) {
            let (out, done) = push_all(&cuts);
            assert_eq!(out.concat(), events, "{blank:?} cut as {cuts:?}");
            assert!(!done);
        }
    }
}

#[test]
fn done_split_across_reads_is_still_the_end() {
    let body = "data: x\r\n\r\ndata: [DONE]\r\n\r\ndata: after\r\n\r\n";
    for cuts in three_way_cuts(body) {
        let (out, done) = push_all(&cuts);
        assert_eq!(out.concat(), "data: x\r\n\r\n", "cut as {cuts:?}");
        assert!(done, "cut as {cuts:?}");
    }
}

#[test]
fn one_byte_at_a_time_gives_what_one_read_gives() {
    let body = ": ping\n\ndata: {\"a\":\"b\\n\"}\n\n\n\ndata: y\r\n\r\ndata:[DONE]\n\n";
    let bytes: Vec<String> = body.chars().map(String::from).collect();
    let refs: Vec<&str> = bytes.iter().map(String::as_str).collect();
    let (one, done_one) = push_all(&[body]);
    let (many, done_many) = push_all(&refs);
    assert_eq!(one.concat(), many.concat());
    assert_eq!(
        one.concat(),
        ": ping\n\ndata: {\"a\":\"b\\n\"}\n\n\n\ndata: y\r\n\r\n"
    );
    assert!(done_one && done_many);
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
    let (out, done) = push_all(&["data: [DONE]later\n\ndata: [DONE][DONE]\n\n"]);
    assert_eq!(out.len(), 1);
    assert!(!done);
}

#[test]
fn the_event_holding_done_is_left_out_whole() {
    let (out, done) = push_all(&["data: a\n\nid: 7\ndata: [DONE]\n\n"]);
    assert_eq!(out, ["data: a\n\n"]);
    assert!(done);
}

#[test]
fn an_event_at_the_cap_passes_and_one_byte_more_is_refused() {
    let event = |len: usize| format!("data: {}\n\n", "x".repeat(len - 8));
    for reads in [1, 7, 1000] {
        let mut splitter = EventSplitter::new(1000);
        let at_cap = event(1000);
        let mut forwarded = Vec::new();
        for piece in at_cap.as_bytes().chunks(at_cap.len().div_ceil(reads)) {
            let split = splitter.push(Bytes::copy_from_slice(piece)).unwrap();
            forwarded.extend_from_slice(&split.events);
            assert!(splitter.pending_len() <= 1000);
        }
        assert_eq!(forwarded, at_cap.as_bytes(), "{reads} reads");
        let over = event(1001);
        let refused = over
            .as_bytes()
            .chunks(over.len().div_ceil(reads))
            .map(|piece| splitter.push(Bytes::copy_from_slice(piece)))
            .find_map(Result::err);
        assert_eq!(refused, Some(EventTooLarge { max: 1000 }), "{reads} reads");
        assert!(!splitter.has_partial(), "nothing is kept after the refusal");
    }
}

#[test]
fn small_events_in_a_read_larger_than_the_cap_pass() {
    let body = "data: 0123456789\n\n".repeat(100);
    let mut splitter = EventSplitter::new(64);
    let split = splitter.push(Bytes::from(body.clone())).unwrap();
    assert_eq!(split.events, body.as_bytes());
    let mut splitter = EventSplitter::new(64);
    let late = format!("{body}data: {}\n\n", "y".repeat(100));
    assert!(splitter.push(Bytes::from(late)).is_err());
}

#[test]
fn the_work_is_linear_in_the_bytes_pushed() {
    // 8 MB in 1 KiB reads: rescanning the pending part on every read
    // would look at about 8 MB × 8,192 / 2 = 34 GB.
    let event = format!("data: {}\n\n", "x".repeat(8 << 20));
    let mut splitter = EventSplitter::new(16 << 20);
    let mut forwarded = 0;
    for piece in event.as_bytes().chunks(1024) {
        forwarded += splitter
            .push(Bytes::copy_from_slice(piece))
            .unwrap()
            .events
            .len();
    }
    assert_eq!(forwarded, event.len());
    let examined = splitter.bytes_examined();
    let pushed = event.len() as u64;
    assert!(
        examined <= 3 * pushed,
        "looked at {examined} bytes for {pushed} pushed"
    );
}

#[test]
fn the_work_is_linear_when_the_cap_forces_a_forward_search() {
    let event = format!("data: {}\n\n", "x".repeat(1000));
    let body = event.repeat(8_000);
    let mut splitter = EventSplitter::new(event.len());
    let mut forwarded = 0;
    for piece in body.as_bytes().chunks(64 * 1024) {
        forwarded += splitter
            .push(Bytes::copy_from_slice(piece))
            .unwrap()
            .events
            .len();
    }
    assert_eq!(forwarded, body.len());
    let examined = splitter.bytes_examined();
    assert!(examined <= 3 * body.len() as u64, "looked at {examined}");
}
