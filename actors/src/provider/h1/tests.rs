//! The own client against a raw TCP server on loopback that writes answers
//! byte for byte as a test tells it to.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Error, Pool};

/// How long any wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);

const REQUEST: &[u8] =
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n";

/// A server that, for each request on each connection, writes the next of
/// `answers` in its pieces (with a pause between them), or closes the
/// connection without answering when that answer has no pieces; counts
/// connections.
struct Server {
    port: u16,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

async fn serve(answers: Vec<Vec<&'static [u8]>>, close_after_each: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(std::sync::Mutex::new(answers.into_iter()));
    let (a, c) = (accepted.clone(), closed.clone());
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.expect("accept");
            a.fetch_add(1, Ordering::SeqCst);
            let (answers, closed) = (answers.clone(), c.clone());
            tokio::spawn(async move {
                connection(socket, answers, close_after_each).await;
                closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Server {
        port,
        accepted,
        closed,
    }
}

type Answers = Arc<std::sync::Mutex<std::vec::IntoIter<Vec<&'static [u8]>>>>;

async fn connection(mut socket: TcpStream, answers: Answers, close_after_each: bool) {
    let mut seen = Vec::new();
    loop {
        let mut buf = [0u8; 4096];
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        // One request is its head and a 2-byte body.
        while seen.len() >= REQUEST.len() + 2 {
            seen.drain(..REQUEST.len() + 2);
            let Some(pieces) = answers.lock().expect("lock").next() else {
                return;
            };
            if pieces.is_empty() {
                return;
            }
            if pieces == [SLOW_CLOSE] {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                return;
            }
            for piece in pieces {
                if socket.write_all(piece).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if close_after_each {
                return;
            }
        }
    }
}

/// An answer that closes the connection 1.5 s after the request, unanswered
/// (past the pool's stale window).
const SLOW_CLOSE: &[u8] = b"(close after 1.5 s)";

fn pool(server: &Server) -> Pool {
    Pool::new("127.0.0.1", server.port, Duration::from_secs(5))
}

/// One call: its status and its body's pieces joined, or the error.
async fn call(pool: &Pool) -> Result<(u16, Vec<u8>), String> {
    let (head, mut body) = tokio::time::timeout(WAIT, pool.send(REQUEST, b"{}"))
        .await
        .expect("timed out waiting for an answer's head")
        .map_err(|e| format!("{e:?}"))?;
    let mut all = Vec::new();
    loop {
        let piece = tokio::time::timeout(WAIT, body.next())
            .await
            .expect("timed out waiting for the body");
        match piece {
            None => return Ok((head.status, all)),
            Some(Ok(piece)) => all.extend_from_slice(&piece),
            Some(Err(why)) => return Err(why.to_owned()),
        }
    }
}

const OK_2: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";

#[tokio::test]
async fn a_kept_alive_connection_carries_the_next_call() {
    let server = serve(vec![vec![OK_2], vec![OK_2], vec![OK_2]], false).await;
    let pool = pool(&server);
    for _ in 0..3 {
        assert_eq!(call(&pool).await, Ok((200, b"hi".to_vec())));
    }
    assert_eq!(
        server.accepted.load(Ordering::SeqCst),
        1,
        "one connection for three calls"
    );
    assert_eq!(pool.idle(), 1);
}

#[tokio::test]
async fn chunked_bodies_are_decoded_across_reads() {
    let pieces: Vec<&'static [u8]> = vec![
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n",
        b"5\r\nhel",
        b"lo\r",
        b"\n6;ext=1\r\n world\r\n",
        b"0\r\n",
        b"trailer: x\r\n\r\n",
    ];
    let server = serve(vec![pieces, vec![OK_2]], false).await;
    let pool = pool(&server);
    assert_eq!(call(&pool).await, Ok((200, b"hello world".to_vec())));
    assert_eq!(
        pool.idle(),
        1,
        "a body read to its end gives its connection back"
    );
    assert_eq!(call(&pool).await, Ok((200, b"hi".to_vec())));
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_without_length_ends_when_the_connection_closes_and_is_not_pooled() {
    let answer: Vec<&'static [u8]> = vec![b"HTTP/1.1 200 OK\r\n\r\nall ", b"of it"];
    let server = serve(vec![answer], true).await;
    let pool = pool(&server);
    assert_eq!(call(&pool).await, Ok((200, b"all of it".to_vec())));
    assert_eq!(pool.idle(), 0);
}

#[tokio::test]
async fn a_pooled_connection_the_provider_closed_is_replaced_without_failing_the_call() {
    let server = serve(vec![vec![OK_2], vec![OK_2]], true).await;
    let pool = pool(&server);
    assert_eq!(call(&pool).await, Ok((200, b"hi".to_vec())));
    // The server closes after its answer; the pool may still hold the
    // connection for a moment, but a call never fails because of it.
    assert_eq!(call(&pool).await, Ok((200, b"hi".to_vec())));
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_pooled_connection_that_closes_instead_of_answering_is_retried_on_a_new_one() {
    // The second call finds the first call's connection open, and the
    // server closes it on reading the request, as one does whose idle
    // timeout passed in that moment.
    let server = serve(vec![vec![OK_2], vec![], vec![OK_2]], false).await;
    let pool = pool(&server);
    assert_eq!(call(&pool).await, Ok((200, b"hi".to_vec())));
    assert_eq!(call(&pool).await, Ok((200, b"hi".to_vec())));
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_reused_connection_that_closes_after_working_on_the_call_does_not_send_it_twice() {
    let server = serve(vec![vec![OK_2], vec![SLOW_CLOSE], vec![OK_2]], false).await;
    let pool = pool(&server);
    assert_eq!(call(&pool).await, Ok((200, b"hi".to_vec())));
    assert_eq!(call(&pool).await, Err("Closed".to_owned()));
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1, "not sent again");
}

#[tokio::test]
async fn a_connection_marked_close_is_not_pooled() {
    let close: &'static [u8] =
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi";
    let server = serve(vec![vec![close]], false).await;
    let pool = pool(&server);
    assert_eq!(call(&pool).await, Ok((200, b"hi".to_vec())));
    assert_eq!(pool.idle(), 0);
}

#[tokio::test]
async fn dropping_a_body_closes_its_connection() {
    let slow: Vec<&'static [u8]> = vec![b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nstart"];
    let server = serve(vec![slow], false).await;
    let pool = pool(&server);
    let (_, mut body) = pool.send(REQUEST, b"{}").await.expect("a head");
    let first = body.next().await.expect("a piece").expect("data");
    assert_eq!(&first[..], b"start");
    drop(body);
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.closed.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the close"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pool.idle(), 0);
}

#[tokio::test]
async fn an_interim_head_is_skipped() {
    let answer: Vec<&'static [u8]> = vec![b"HTTP/1.1 100 Continue\r\n\r\n", OK_2];
    let server = serve(vec![answer], false).await;
    assert_eq!(call(&pool(&server)).await, Ok((200, b"hi".to_vec())));
}

#[tokio::test]
async fn an_error_answer_keeps_its_headers_for_retry_hints() {
    let answer: &'static [u8] =
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after-ms: 250\r\ncontent-length: 2\r\n\r\n{}";
    let server = serve(vec![vec![answer]], false).await;
    let (head, _) = pool(&server).send(REQUEST, b"{}").await.expect("a head");
    assert_eq!(head.status, 429);
    assert_eq!(
        head.headers.get("retry-after-ms").map(|v| v.as_bytes()),
        Some(&b"250"[..])
    );
}

#[tokio::test]
async fn a_malformed_chunk_fails_the_body_and_is_not_pooled() {
    let answer: Vec<&'static [u8]> =
        vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"];
    let server = serve(vec![answer], false).await;
    let pool = pool(&server);
    assert!(call(&pool).await.is_err());
    assert_eq!(pool.idle(), 0);
}

#[tokio::test]
async fn a_body_cut_short_is_an_error() {
    let answer: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf";
    let server = serve(vec![vec![answer]], true).await;
    let pool = pool(&server);
    assert_eq!(call(&pool).await, Err(super::BROKE_READING.to_owned()));
}

#[tokio::test]
async fn a_head_that_is_not_http_is_a_protocol_error() {
    let server = serve(vec![vec![b"SSH-2.0-OpenSSH\r\n\r\n"]], false).await;
    let error = pool(&server).send(REQUEST, b"{}").await.err();
    assert!(matches!(error, Some(Error::Protocol(_))), "{error:?}");
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let pool = Pool::new("127.0.0.1", port, Duration::from_secs(5));
    assert_eq!(pool.send(REQUEST, b"{}").await.err(), Some(Error::Connect));
}
