//! The server's connections. hyper answers a request it cannot parse (a URI over its 64 KiB
//! limit, a header section over its buffer, a malformed request line) itself, with a bare
//! status line and no body, before any middleware can run. [`Problems`] wraps the
//! listener's connections so those answers are problem+json like every other refusal.
//!
//! How: hyper writes such an answer as one buffer holding only a head (the connection ends
//! after it). A write that is exactly such a head, with a status hyper answers itself and no
//! body, is replaced by the problem response; every other write passes through untouched.
//! Connections are not vectored, so hyper flattens each head into one write.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::error::Problem;

/// A TCP listener whose connections answer hyper's own refusals as problem+json.
pub struct Problems(pub TcpListener);

impl axum::serve::Listener for Problems {
    type Io = ProblemIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, address) = axum::serve::Listener::accept(&mut self.0).await;
        (
            ProblemIo {
                inner: io,
                replacing: None,
            },
            address,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A connection whose bare refusals by hyper are rewritten (see the module docs).
pub struct ProblemIo<T> {
    inner: T,
    replacing: Option<Replacement>,
}

/// A problem response being written in place of hyper's bare head of `original` bytes.
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    original: usize,
}

/// The statuses hyper answers by itself, with the problem each becomes.
fn problem_for(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    let (slug, status, title, detail) = match rest.get(..4)? {
        "400 " => (
            "bad-request",
            400,
            "Bad Request",
            "the request is not valid HTTP/1.1",
        ),
        "414 " => (
            "uri-too-long",
            414,
            "URI Too Long",
            "the request's URI is over this server's limit of 65,534 bytes",
        ),
        "431 " => (
            "headers-too-large",
            431,
            "Request Header Fields Too Large",
            "the request's header section is over this server's limit",
        ),
        _ => return None,
    };
    // Only a head with no body: every response of the application has a problem body.
    let lower = text.to_ascii_lowercase();
    if !lower.ends_with("\r\n\r\n")
        || lower.matches("\r\n\r\n").count() != 1
        || lower.contains("\r\ncontent-type:")
        || !lower.contains("\r\ncontent-length: 0\r\n")
    {
        return None;
    }
    let body = serde_json::to_vec(&Problem {
        kind: format!("https://countersign.dev/problems/{slug}"),
        title: title.to_owned(),
        status,
        detail: detail.to_owned(),
    })
    .ok()?;
    let mut response = format!(
        "HTTP/1.1 {status} {title}\r\ncontent-type: application/problem+json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    Some(response)
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none()
            && let Some(bytes) = problem_for(buf)
        {
            this.replacing = Some(Replacement {
                bytes,
                written: 0,
                original: buf.len(),
            });
        }
        let Some(replacement) = this.replacing.as_mut() else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        // hyper calls again with the same buffer until it is reported written: the
        // replacement is written whole first, whatever it takes.
        while replacement.written < replacement.bytes.len() {
            let n = ready!(
                Pin::new(&mut this.inner).poll_write(cx, &replacement.bytes[replacement.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            replacement.written += n;
        }
        let original = replacement.original;
        this.replacing = None;
        Poll::Ready(Ok(original))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then writes each head as one buffer (see the module docs).
    fn is_write_vectored(&self) -> bool {
        false
    }
}
