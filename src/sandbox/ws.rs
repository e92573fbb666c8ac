//! MQTT over websockets (MQTT 5 §6, 3.1.1 §6): binary frames, subprotocol
//! `mqtt`, for browsers' MQTT.js clients; plain (ws://) or inside TLS
//! (wss://, with the TLS listener's certificates). The websocket is adapted into a
//! byte stream so the broker's one connection handler serves it like TCP.

use super::broker::{Broker, Via};
use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Accepts websocket clients on `listener` until the task is dropped.
pub async fn serve(broker: Broker, listener: TcpListener) {
    super::accept_each(
        broker,
        listener,
        "websocket",
        |broker, stream, peer, admission| async move {
            let timeout = broker.limits().connect_timeout;
            let shake = tokio::time::timeout(timeout, handshake(&broker, stream));
            // None: closed to make room for a newer connection (logged).
            let Some(done) = admission.unless_evicted(shake).await else {
                return;
            };
            match done {
            Ok(Ok(ws)) => {
                let (rd, wr) = tokio::io::split(WsIo::new(ws));
                broker.connection(rd, wr, peer, Via::WebSocket, admission).await;
            }
            Ok(Err(e)) => broker.log(format!(
                "{peer}: websocket handshake refused: {e} (MQTT clients use ws://host:port/mqtt)"
            )),
            Err(_) => broker.log(format!(
                "{peer}: no websocket handshake within {timeout:?}, closed"
            )),
        }
        },
    )
    .await
}

/// Accepts websocket-over-TLS clients (wss://) until the task is dropped.
pub async fn serve_tls(broker: Broker, listener: TcpListener, acceptor: TlsAcceptor) {
    super::accept_each(
        broker,
        listener,
        "wss",
        move |broker, stream, peer, admission| {
            let acceptor = acceptor.clone();
            async move {
                let timeout = broker.limits().connect_timeout;
                let both = async {
                    let (tls, name) = super::tls::accept_named(&acceptor, stream).await;
                    let tls = tls.map_err(|e| {
                        format!(
                            "TLS refused: {}{}",
                            super::tls::presented(&name),
                            super::tls::refusal(&e)
                        )
                    })?;
                    let ws = handshake(&broker, tls).await.map_err(|e| {
                    format!(
                        "websocket handshake refused: {e} (MQTT clients use wss://host:port/mqtt)"
                    )
                })?;
                    Ok::<_, String>((ws, name))
                };
                let Some(done) = admission
                    .unless_evicted(tokio::time::timeout(timeout, both))
                    .await
                else {
                    return;
                };
                match done {
                    Ok(Ok((ws, name))) => {
                        let (rd, wr) = tokio::io::split(WsIo::new(ws));
                        broker
                            .connection(rd, wr, peer, Via::SecureWebSocket(name), admission)
                            .await;
                    }
                    Ok(Err(why)) => broker.log(format!("{peer} (wss): {why}")),
                    Err(_) => broker.log(format!(
                        "{peer} (wss): no TLS and websocket handshake within {timeout:?}, closed"
                    )),
                }
            }
        },
    )
    .await
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    broker: &Broker,
    stream: S,
) -> Result<WebSocketStream<S>, WsError> {
    // A whole MQTT packet may come as one websocket message.
    let max = broker.limits().max_packet_size.saturating_add(64);
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    // Any path (MQTT.js uses /mqtt, others /); the `mqtt` subprotocol is
    // echoed when offered, as browsers refuse a socket whose requested
    // subprotocol is not confirmed.
    // (tungstenite's callback type fixes the error type.)
    #[allow(clippy::result_large_err)]
    let answer = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let offered = req
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|p| p.eq_ignore_ascii_case("mqtt") || p.eq_ignore_ascii_case("mqttv3.1"));
        if let Some(p) = offered
            && let Ok(v) = HeaderValue::from_str(p)
        {
            resp.headers_mut().insert("Sec-WebSocket-Protocol", v);
        }
        Ok(resp)
    };
    tokio_tungstenite::accept_hdr_async_with_config(stream, answer, Some(config)).await
}

/// A websocket seen as a byte stream: every write is one binary message,
/// binary messages are read back to back; text messages are a protocol
/// error, a close is the end of the stream.
pub struct WsIo<S> {
    ws: WebSocketStream<S>,
    pending: Bytes,
}

impl<S> WsIo<S> {
    pub fn new(ws: WebSocketStream<S>) -> Self {
        WsIo {
            ws,
            pending: Bytes::new(),
        }
    }
}

fn io_err(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => self.pending = b,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text websocket message (MQTT needs binary messages)",
                    )));
                }
                // Pings are answered by tungstenite itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io_err(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io_err)?;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io_err)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(io_err)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(io_err)
    }
}
