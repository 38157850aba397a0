//! A forward HTTP proxy on loopback, as a corporate network's: it relays a
//! request whose target is a whole URL (`POST http://host/path`) to that
//! host, and opens a tunnel for `CONNECT host:port`, recording the head of
//! each connection's first request and, for a tunnel, the first byte sent
//! through it (`0x16` opens a TLS handshake).
//!
//! After its first head, a connection's bytes are relayed as they are, both
//! ways: later requests on a kept-alive connection name whole URLs too,
//! which HTTP/1.1 servers (the fake provider's hyper) accept.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One connection's first request, as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Proxied {
    /// Its request line and headers, as sent.
    pub head: String,
    /// For `CONNECT`: the first byte sent through the tunnel.
    pub tunnelled: Option<u8>,
}

/// A running proxy; it stops when dropped.
pub struct FakeProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Proxied>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeProxy {
    /// Starts a proxy on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, recorded.clone()));
            }
        });
        Self { addr, seen, task }
    }

    /// `http://127.0.0.1:PORT`, for `HTTP_PROXY` and the like.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The first request of every connection so far.
    pub fn seen(&self) -> Vec<Proxied> {
        self.seen.lock().expect("the proxy's record").clone()
    }
}

impl Drop for FakeProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads up to the end of the head: the head and what came after it.
async fn read_head(client: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if client.read_buf(&mut buf).await.ok()? == 0 || buf.len() > 64 * 1024 {
            return None;
        }
    }
}

/// Where a request line sends the proxy: `host:port`, and whether it is a
/// tunnel.
fn destination(head: &str) -> Option<(String, bool)> {
    let mut words = head.split_whitespace();
    let method = words.next()?;
    let target = words.next()?;
    if method == "CONNECT" {
        return Some((target.to_owned(), true));
    }
    let rest = target.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let authority = match authority.contains(':') {
        true => authority.to_owned(),
        false => format!("{authority}:80"),
    };
    Some((authority, false))
}

async fn relay(mut client: TcpStream, seen: Arc<Mutex<Vec<Proxied>>>) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    let Some((authority, tunnel)) = destination(&head) else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        return;
    };
    let Ok(mut upstream) = TcpStream::connect(&authority).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    let mut record = Proxied {
        head: head.clone(),
        tunnelled: None,
    };
    if tunnel {
        let answer = b"HTTP/1.1 200 Connection established\r\n\r\n";
        if client.write_all(answer).await.is_err() {
            return;
        }
        let mut first = [0u8; 1];
        if client.peek(&mut first).await.unwrap_or(0) == 1 {
            record.tunnelled = Some(first[0]);
        }
    } else if upstream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    if upstream.write_all(&rest).await.is_err() {
        return;
    }
    seen.lock().expect("the proxy's record").push(record);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
