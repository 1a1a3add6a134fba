//! HTTPS on the HTTP listener (`[http] tls = true`): the same certificate as SIP over TLS
//! (`[sip.tls]`), so that one file pair, or one self-signed development certificate, serves
//! `sips:`, `https://` and `wss://`. Browsers give a page the microphone only in a secure
//! context, and the agent desktop's SIP rides on `wss://…/sip`.
//!
//! A background task accepts TCP connections and shakes hands with each on its own task
//! (a slow or silent client holds up nobody), then hands the finished TLS streams to
//! axum through [`TlsListener`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::TlsPem;

/// How long a client may take over its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The HTTPS certificate, replaced whole by a reload.
pub(crate) struct HttpsCertificate(ArcSwap<CertifiedKey>);

impl std::fmt::Debug for HttpsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpsCertificate")
    }
}

fn certified(pem: &TlsPem) -> anyhow::Result<Arc<CertifiedKey>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(&pem.certificate).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(&pem.private_key)?;
    let key = rustls::crypto::ring::sign::any_supported_type(&key)?;
    Ok(Arc::new(CertifiedKey::new(chain, key)))
}

impl HttpsCertificate {
    /// The certificate and key of `pem`.
    pub(crate) fn new(pem: &TlsPem) -> anyhow::Result<Arc<HttpsCertificate>> {
        Ok(Arc::new(HttpsCertificate(ArcSwap::new(certified(pem)?))))
    }

    /// New connections get `pem`'s certificate from now on.
    pub(crate) fn reload(&self, pem: &TlsPem) -> anyhow::Result<()> {
        self.0.store(certified(pem)?);
        Ok(())
    }
}

impl ResolvesServerCert for HttpsCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// TLS streams ready for axum.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` with `certificate` until `shutdown`.
    pub(crate) fn new(
        tcp: TcpListener,
        certificate: Arc<HttpsCertificate>,
        shutdown: CancellationToken,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_cert_resolver(certificate);
        // HTTP/1.1 only: a WebSocket upgrade (RFC 6455) is an HTTP/1.1 affair.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (sender, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, remote) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            debug!(%error, "HTTPS accept");
                            // Out of descriptors, say: let the moment pass.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            sender.send((tls, remote)).await.ok();
                        }
                        Ok(Err(error)) => debug!(%remote, %error, "TLS handshake failed"),
                        Err(_) => debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accepting task stopped (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The client's address, whether the listener is plain or TLS.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RemoteAddr(pub(crate) SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for RemoteAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        RemoteAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for RemoteAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        RemoteAddr(*stream.remote_addr())
    }
}
