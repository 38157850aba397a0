//! An answer's body on the daemon's own client: a stream of its pieces as
//! they arrive, decoded by [`Decoder`].
//!
//! Once the body has been read to its end, its connection goes back to the
//! pool; a body dropped before that closes its connection, which is how an
//! ended session aborts its upstream call.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::Stream;

use super::conn::Conn;
use super::decode::{Decoder, Framing, Step};
use super::pool::Shared;

/// A body being read; a stream of its pieces.
pub struct Body {
    /// The connection, until the body ends or fails.
    conn: Option<Conn>,
    /// Where the decoding is.
    decoder: Decoder,
    /// Whether the connection may be pooled once the body is read.
    keep_alive: bool,
    /// The pool it returns to.
    pool: Arc<Shared>,
}

impl Body {
    pub(super) fn new(conn: Conn, framing: Framing, keep_alive: bool, pool: Arc<Shared>) -> Self {
        let mut body = Self {
            conn: Some(conn),
            decoder: Decoder::new(framing),
            keep_alive,
            pool,
        };
        if body.decoder.is_done() {
            body.finished();
        }
        body
    }

    /// The body is complete: its connection goes back to the pool if it can
    /// carry another request (nothing unread is left on it).
    fn finished(&mut self) {
        self.decoder.end();
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            self.pool.put_back(conn);
        }
    }

    /// The body cannot be read on: its connection is closed, and the stream
    /// ends after this error.
    fn fail(&mut self, why: &'static str) -> &'static str {
        self.conn = None;
        self.decoder.end();
        why
    }

    /// Whether the whole body has been read.
    pub fn is_end(&self) -> bool {
        self.decoder.is_done()
    }
}

impl Stream for Body {
    type Item = Result<Bytes, &'static str>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.step(&mut conn.buf) {
                Ok(Step::Data(data)) => {
                    if this.decoder.is_done() {
                        this.finished();
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Ok(Step::End) => {
                    this.finished();
                    return Poll::Ready(None);
                }
                Ok(Step::More) => {}
                Err(why) => return Poll::Ready(Some(Err(this.fail(why)))),
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if this.decoder.until_close() => {
                    this.decoder.end();
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) | Err(_) => {
                    return Poll::Ready(Some(Err(this.fail(super::BROKE_READING))));
                }
                Ok(_) => {}
            }
        }
    }
}
