//! JSON bodies for the errors hyper answers by itself.
//!
//! hyper reads the request line and the headers before any of our code sees a request. When
//! it cannot — a URI longer than 64 KiB (414), headers beyond its buffer or more than 100 of
//! them (431), a request line or header that is not HTTP (400) — it writes a bare status line
//! with `content-length: 0` and closes the connection, and it offers no hook to change that.
//! Every other error we send is JSON `{code, message}`, so that clients parse one shape.
//!
//! [`JsonParseErrors`] wraps each connection and, on the way out, replaces exactly those
//! automatic answers with the same status carrying our body. They are recognised by what only
//! they have: one of those three statuses with an empty body (every answer of ours carries a
//! JSON or HTML body), written as the whole head in one piece.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::request::{ErrorBody, ErrorCode};

/// An acceptor whose connections answer hyper's own parse errors in JSON.
pub struct JsonParseErrors<A>(pub A);

impl<A: Acceptor> Acceptor for JsonParseErrors<A> {
    type Io = Rewriting<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.0.accept().await?;
        Ok((Rewriting { io, pending: None }, local, remote, scheme))
    }
}

/// One connection; see the module doc.
pub struct Rewriting<T> {
    io: T,
    /// A replacement being written: its bytes, how many are out, and how many bytes of the
    /// caller's buffer it stands for (reported once it is all out).
    pending: Option<(Vec<u8>, usize, usize)>,
}

/// Our answer in place of `head`, when `head` is one of hyper's automatic ones.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    let (code, message) = match rest.get(..4)? {
        "400 " => (
            ErrorCode::InvalidRequest,
            "the request line or a header is not valid HTTP",
        ),
        "414 " => (
            ErrorCode::UriTooLong,
            "the request line is too long (the limit is 65534 bytes)",
        ),
        "431 " => (
            ErrorCode::HeadersTooLarge,
            "the headers are too large or too many (at most 100)",
        ),
        _ => return None,
    };
    let fields = text.strip_suffix("\r\n\r\n")?;
    if !fields.contains("\r\ncontent-length: 0\r\n") && !fields.ends_with("\r\ncontent-length: 0") {
        return None;
    }
    let body = serde_json::to_string(&ErrorBody {
        code,
        message: message.into(),
        problems: None,
    })
    .ok()?;
    let fields = fields.replace("\r\ncontent-length: 0", "");
    Some(
        format!(
            "{fields}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncWrite + Unpin> Rewriting<T> {
    /// Writes the pending replacement out; ready with the length it stands for.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let (bytes, written, stands_for) = self.pending.as_mut().expect("a pending answer");
        while *written < bytes.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let stands_for = *stands_for;
        self.pending = None;
        Poll::Ready(Ok(stands_for))
    }

    fn start_replacing(&mut self, buf: &[u8]) -> bool {
        if self.pending.is_none()
            && let Some(bytes) = replacement(buf)
        {
            self.pending = Some((bytes, 0, buf.len()));
        }
        self.pending.is_some()
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewriting<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.start_replacing(buf) {
            return this.poll_pending(cx);
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // An automatic answer is a head alone: one non-empty slice.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next())
            && this.start_replacing(only)
        {
            return this.poll_pending(cx);
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewriting<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::replacement;

    #[test]
    fn only_hypers_empty_parse_error_answers_are_replaced() {
        let automatic = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Thu, 26 Nov 2026 18:23:56 GMT\r\n\r\n";
        let ours = String::from_utf8(replacement(automatic).unwrap()).unwrap();
        let (head, body) = ours.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\nconnection: close\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(!head.contains("content-length: 0"));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], "uri_too_long");

        // An answer with a body, another status, or a head split across writes is left alone.
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n",
            b"{\"code\":\"x\"}",
        ] {
            assert!(replacement(other).is_none(), "{other:?}");
        }
    }
}
