//! One upstream connection: writing a request, reading an answer's head,
//! and filling its read buffer only once the socket has bytes to give.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

use super::Error;
use super::head::{Head, parse_head};

/// The largest answer head accepted (hyper's default limit is about this).
const MAX_HEAD: usize = 64 * 1024;

/// The most one read takes: a chat completion (0.5–2 KiB) or a burst of
/// stream events fits in one, and a large answer takes few syscalls.
const READ_SIZE: usize = 16 * 1024;

/// An open connection and what has been read on it but not used yet.
pub(super) struct Conn {
    /// The socket.
    pub io: TcpStream,
    /// Bytes read and not yet handed on; empty (no allocation) while the
    /// connection waits for an answer.
    pub buf: BytesMut,
    /// When it last went back to the pool.
    pub idle_since: Instant,
}

impl Conn {
    pub fn new(io: TcpStream) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            idle_since: Instant::now(),
        }
    }

    /// Whether an idle connection is still open: a connection the provider
    /// closed (or wrote to unasked) is readable. Costs a syscall only when
    /// the socket was seen readable since its last short read.
    pub fn is_open(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Writes `head` then `body` (one `writev` when the socket takes both).
    pub async fn write(&mut self, head: &[u8], body: &[u8]) -> Result<(), Error> {
        let mut written = 0;
        let total = head.len() + body.len();
        while written < total {
            let slices = if written < head.len() {
                [IoSlice::new(&head[written..]), IoSlice::new(body)]
            } else {
                [
                    IoSlice::new(&body[written - head.len()..]),
                    IoSlice::new(&[]),
                ]
            };
            match self.io.try_write_vectored(&slices) {
                Ok(0) => return Err(Error::Send),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.io.writable().await.map_err(|_| Error::Send)?;
                }
                Err(_) => return Err(Error::Send),
            }
        }
        Ok(())
    }

    /// Reads until an answer's head is complete (skipping `1xx` heads), and
    /// leaves what follows it in the buffer.
    pub async fn read_head(&mut self) -> Result<Head, Error> {
        loop {
            if let Some(head) = parse_head(&mut self.buf)? {
                if (100..200).contains(&head.status) {
                    continue;
                }
                return Ok(head);
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(Error::Protocol("the answer's head is too large"));
            }
            match poll_fn(|cx| self.poll_fill(cx)).await {
                Ok(0) if self.buf.is_empty() => return Err(Error::Closed),
                Ok(0) => return Err(Error::Protocol("the answer ended within its head")),
                Ok(_) => {}
                Err(_) if self.buf.is_empty() => return Err(Error::Closed),
                Err(_) => return Err(Error::Protocol("the connection broke within the head")),
            }
        }
    }

    /// Reads what the socket has into the buffer; `Ok(0)` is its end. The
    /// read goes to the stack first and only what came is kept, so a
    /// connection waiting on a slow provider holds no buffer, and what it
    /// holds after is the size of what arrived. (tokio's `poll_read` forgets
    /// the socket's readiness after a short read, so the next wait costs no
    /// `recv` that would only say `EAGAIN`.)
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        // Uninitialized: zeroing 16 KiB would cost more than most reads.
        let mut stack = [MaybeUninit::<u8>::uninit(); READ_SIZE];
        let mut read = ReadBuf::uninit(&mut stack);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        self.buf.extend_from_slice(read.filled());
        Poll::Ready(Ok(read.filled().len()))
    }
}
