//! TLS on the HTTP listener (`[server.tls]`): rustls with the `ring`
//! provider, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, no client
//! certificates.
//!
//! [`Tls`] holds the current `rustls::ServerConfig` in an [`ArcSwap`]: each
//! handshake takes the one current when it starts, so a reload
//! ([`Tls::reload`], driven by [`TlsReloader`]) applies to new
//! connections while open ones keep the certificate they began with.

mod reload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

pub use reload::TlsReloader;

use crate::config::TlsConfig;

/// Why a certificate or its key could not be used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read the TLS {what} {}: {source}", file.display())]
    Read {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid PEM, or holds no section of the kind needed.
    #[error("the TLS {what} file {} {reason}", file.display())]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the pair: an unsupported key, a malformed
    /// certificate, or a key that is not the certificate's.
    #[error("the TLS certificate {} and private key {} cannot be used together: {source}", cert.display(), key.display())]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
}

/// The listener's TLS side: the certificate files and the server
/// configuration last loaded from them. Shared as `Arc<Tls>`.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<rustls::ServerConfig>,
}

impl Tls {
    /// Loads the certificate and key of `config`, and logs the
    /// certificate's SHA-256 fingerprint.
    ///
    /// # Errors
    /// A [`TlsError`] naming the file that is missing, unreadable or invalid.
    pub fn load(config: &TlsConfig) -> Result<Tls, TlsError> {
        let (server_config, fingerprint) = server_config(&config.cert, &config.key)?;
        tracing::info!(cert = %config.cert.display(), key = %config.key.display(), sha256 = %fingerprint, "TLS certificate loaded");
        Ok(Tls {
            cert: config.cert.clone(),
            key: config.key.clone(),
            current: ArcSwap::from_pointee(server_config),
        })
    }

    /// Reads the files again and, if they are valid, serves new connections
    /// with them. Logs the outcome; on failure the previous certificate
    /// stays in use. Blocks on file reads: call it on a blocking thread.
    pub fn reload(&self) -> bool {
        match server_config(&self.cert, &self.key) {
            Ok((server_config, fingerprint)) => {
                self.current.store(Arc::new(server_config));
                tracing::info!(cert = %self.cert.display(), key = %self.key.display(), sha256 = %fingerprint, "TLS certificate reloaded");
                true
            }
            Err(error) => {
                tracing::error!(%error, "TLS certificate reload failed; still serving the previous certificate");
                false
            }
        }
    }

    /// The certificate and key files.
    pub fn files(&self) -> [&Path; 2] {
        [&self.cert, &self.key]
    }

    /// The TLS handshake of a new connection, with the current certificate.
    /// `None` (logged at debug: scanners cause many) if it fails, takes
    /// longer than `timeout`, or `shutdown` is cancelled meanwhile.
    pub async fn accept(
        &self,
        stream: TcpStream,
        peer: std::net::SocketAddr,
        timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Option<TlsStream<TcpStream>> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.current.load_full());
        let handshake = tokio::time::timeout(timeout, acceptor.accept(stream));
        let result = tokio::select! {
            () = shutdown.cancelled() => return None,
            result = handshake => result,
        };
        match result {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, timeout_secs = timeout.as_secs_f64(), "TLS handshake timed out");
                None
            }
        }
    }
}

/// The server configuration for `cert` and `key`, and the SHA-256
/// fingerprint of the certificate (as `openssl x509 -fingerprint -sha256`
/// prints it).
fn server_config(cert: &Path, key: &Path) -> Result<(rustls::ServerConfig, String), TlsError> {
    let chain = read_chain(cert)?;
    let private_key = read_key(key)?;
    let fingerprint = fingerprint(&chain[0]);
    let rejected = |source| TlsError::Rejected {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    };
    // The provider is named rather than taken from the process default, so
    // another crate's rustls features cannot change or confuse it.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(rejected)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, fingerprint))
}

const CERTIFICATE: &str = "certificate";
const PRIVATE_KEY: &str = "private key";

fn read_chain(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(CERTIFICATE, file)?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(CERTIFICATE, file, &error))?;
    if chain.is_empty() {
        return Err(pem_error(CERTIFICATE, file, &pem::Error::NoItemsFound));
    }
    Ok(chain)
}

fn read_key(file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read(PRIVATE_KEY, file)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|error| pem_error(PRIVATE_KEY, file, &error))
}

fn read(what: &'static str, file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|source| TlsError::Read {
        what,
        file: file.to_path_buf(),
        source,
    })
}

fn pem_error(what: &'static str, file: &Path, error: &pem::Error) -> TlsError {
    let reason = match (error, what) {
        (pem::Error::NoItemsFound, CERTIFICATE) => "holds no PEM certificate (BEGIN CERTIFICATE)".to_owned(),
        (pem::Error::NoItemsFound, _) => {
            "holds no PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)".to_owned()
        }
        (error, _) => format!("is not valid PEM: {error}"),
    };
    TlsError::Pem {
        what,
        file: file.to_path_buf(),
        reason,
    }
}

/// `AB:CD:...`, the SHA-256 of the DER certificate.
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    let hex: Vec<String> = digest.iter().map(|byte| format!("{byte:02X}")).collect();
    hex.join(":")
}

#[cfg(test)]
mod tests;
