//! A client connection of its own to the daemon's socket, for tests that
//! must control how requests map to connections: each connection is
//! accepted by one shard, so many separate connections spread requests over
//! the shards, and a closed connection must leave no descriptor behind.
//!
//! Plain hyper HTTP/1.1 over a `UnixStream`, with no pool: the connection
//! lives exactly as long as its [`Connection`].

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

/// One open HTTP/1.1 connection to the daemon; closed when dropped.
pub struct Connection {
    /// Where requests are written.
    send: SendRequest<Full<Bytes>>,
    /// Drives the connection; aborting it closes the socket.
    driver: JoinHandle<()>,
}

/// An answer read whole: its status and body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl Connection {
    /// Connects to `socket`. Panics if the daemon does not accept.
    pub async fn open(socket: &Path) -> Connection {
        let stream = UnixStream::connect(socket)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
        let (send, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .expect("an HTTP/1.1 handshake on a fresh socket");
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Connection { send, driver }
    }

    /// Sends `POST /v1/chat/completions` with this JSON `body` and extra
    /// `headers`, and reads the whole answer.
    pub async fn chat(&mut self, body: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = hyper::Request::post("/v1/chat/completions")
            .header("host", "localhost")
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("a well-formed request");
        self.send(request).await
    }

    /// Sends `GET path` and reads the whole answer.
    pub async fn get(&mut self, path: &str) -> Answer {
        let request = hyper::Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .expect("a well-formed request");
        self.send(request).await
    }

    async fn send(&mut self, request: hyper::Request<Full<Bytes>>) -> Answer {
        self.send.ready().await.expect("the connection is usable");
        let response = self
            .send
            .send_request(request)
            .await
            .expect("the daemon answers");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the answer's body arrives whole")
            .to_bytes();
        Answer { status, body }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Sends one chat request on a connection of its own, which is closed once
/// the answer has been read.
pub async fn chat_once(socket: &Path, body: &str, headers: &[(&str, &str)]) -> Answer {
    Connection::open(socket).await.chat(body, headers).await
}
