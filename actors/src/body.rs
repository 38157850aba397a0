//! Gathering a body of at most so many bytes, whatever it is read from:
//! the HTTP layer reads requests with it, the provider calls read answers.
//!
//! A body that arrives in one piece (the common case: a request, or a
//! small answer) is kept as that piece, without a copy.

use bytes::{Bytes, BytesMut};

/// The body was larger than the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// The limit it passed.
    pub limit: usize,
}

/// A body being gathered.
#[derive(Debug)]
pub struct Limited {
    /// Largest body accepted.
    limit: usize,
    /// The first piece, kept as is while it is the only one.
    first: Option<Bytes>,
    /// The pieces copied together, once there are several.
    joined: BytesMut,
    /// Room to make for them then: the declared length, up to 64 KiB (a
    /// body in one piece, the usual case, allocates nothing here).
    room: usize,
}

impl Limited {
    /// Gathering at most `limit` bytes; refused at once when the declared
    /// length (`Content-Length`) is already larger.
    pub fn new(limit: usize, declared: Option<u64>) -> Result<Self, TooLarge> {
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(TooLarge { limit });
        }
        let room = declared.map_or(0, |length| length as usize);
        Ok(Self {
            limit,
            first: None,
            joined: BytesMut::new(),
            room: room.min(64 * 1024),
        })
    }

    /// Bytes gathered so far.
    pub fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.joined.len()
    }

    /// Whether nothing has been gathered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the next piece.
    pub fn push(&mut self, chunk: Bytes) -> Result<(), TooLarge> {
        if self.len() + chunk.len() > self.limit {
            return Err(TooLarge { limit: self.limit });
        }
        match self.first.take() {
            None if self.joined.is_empty() => self.first = Some(chunk),
            first => {
                if let Some(first) = first {
                    self.joined
                        .reserve(self.room.max(first.len() + chunk.len()));
                    self.joined.extend_from_slice(&first);
                }
                self.joined.extend_from_slice(&chunk);
            }
        }
        Ok(())
    }

    /// The whole body.
    pub fn finish(self) -> Bytes {
        match self.first {
            Some(first) => first,
            None => self.joined.freeze(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_piece_is_kept_without_a_copy() {
        let piece = Bytes::from_static(b"{\"a\":1}");
        let mut body = Limited::new(100, Some(7)).unwrap();
        body.push(piece.clone()).unwrap();
        let whole = body.finish();
        assert_eq!(whole.as_ptr(), piece.as_ptr());
    }

    #[test]
    fn pieces_are_joined_and_the_limit_holds() {
        let mut body = Limited::new(5, None).unwrap();
        body.push(Bytes::from_static(b"ab")).unwrap();
        body.push(Bytes::from_static(b"cd")).unwrap();
        assert_eq!(
            body.push(Bytes::from_static(b"ef")),
            Err(TooLarge { limit: 5 })
        );
        assert_eq!(&body.finish()[..], b"abcd");
        assert_eq!(Limited::new(5, Some(6)).unwrap_err(), TooLarge { limit: 5 });
    }
}
