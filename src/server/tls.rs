//! TLS for the webhook port: PEM loading, the rustls server configuration
//! (TLS 1.2+ only, ALPN `h2` and `http/1.1`), and certificate reload.
//!
//! The certificate lives behind a [`ReloadingResolver`] that rustls asks
//! once per handshake, so a reload changes what NEW handshakes present while
//! established connections keep the session they have: nothing is dropped.
//!
//! Reload is a poll: every interval the watcher reads both files (through
//! any symlinks) and compares their bytes with the last pair it saw. That
//! follows every way a file can change, including the kubelet's Secret
//! volume update (a new timestamped directory, then an atomic rename of the
//! `..data` symlink), writes that keep the mtime, and inode reuse. A new pair
//! that does not load (bad PEM, no key, key not matching the certificate)
//! keeps the old one and logs why, once per distinct broken pair.

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, version};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::metrics::Metrics;

/// ALPN protocol identifiers the webhook offers, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate/key pair could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate file holds a malformed PEM section.
    #[error("{}: malformed PEM certificate", path.display())]
    CertPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("{}: no PEM certificate found", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM).
    #[error("{}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        source: rustls_pki_types::pem::Error,
    },
    /// rustls rejected the pair: unsupported key type, unparsable
    /// certificate, or a key that does not match the certificate.
    #[error("{} and {} are not a usable certificate/key pair", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The TLS configuration could not be built (protocol versions).
    #[error("cannot build the TLS configuration")]
    Config(#[source] rustls::Error),
}

/// The bytes of one certificate/key pair as read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairBytes {
    /// The certificate file's content.
    pub cert: Vec<u8>,
    /// The key file's content.
    pub key: Vec<u8>,
}

/// The ring provider used for every handshake.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads both files (following symlinks).
pub async fn read_pair(cert: &Path, key: &Path) -> Result<PairBytes, TlsError> {
    let read = |path: &Path| {
        let path = path.to_path_buf();
        async move {
            tokio::fs::read(&path)
                .await
                .map_err(|source| TlsError::Read { path, source })
        }
    };
    Ok(PairBytes {
        cert: read(cert).await?,
        key: read(key).await?,
    })
}

/// Parses a pair and checks that the key belongs to the certificate.
pub fn parse_pair(
    bytes: &PairBytes,
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&bytes.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::CertPem {
            path: cert_path.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&bytes.key).map_err(|source| TlsError::Key {
        path: key_path.to_path_buf(),
        source,
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Pair {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    })
}

/// Hands rustls the current certificate; swapped on reload.
#[derive(Debug)]
pub struct ReloadingResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingResolver {
    /// A resolver that presents `key` until [`ReloadingResolver::set`].
    pub fn new(key: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(key)),
        }
    }

    /// Presents `key` from the next handshake on.
    pub fn set(&self, key: CertifiedKey) {
        let key = Arc::new(key);
        // A poisoned lock only means a writer panicked mid-assignment of an
        // Arc, which cannot leave it half-written: keep using it.
        match self.current.write() {
            Ok(mut guard) => *guard = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The webhook's rustls configuration: TLS 1.3 and 1.2 only, ALPN h2 then
/// http/1.1, certificates from `resolver`.
pub fn server_config(
    resolver: Arc<ReloadingResolver>,
    provider: Arc<CryptoProvider>,
) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Where the pair lives and how often to look at it.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The certificate chain file.
    pub cert: PathBuf,
    /// The key file.
    pub key: PathBuf,
    /// How long between two looks.
    pub interval: Duration,
}

/// Polls the files until the task is dropped; swaps in every new pair that
/// loads, keeps the old one (with a warning) otherwise.
pub async fn watch(
    watch: Watch,
    mut seen: PairBytes,
    resolver: Arc<ReloadingResolver>,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
) {
    let mut ticker = tokio::time::interval(watch.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate
    let mut read_failed = false;
    loop {
        ticker.tick().await;
        let bytes = match read_pair(&watch.cert, &watch.key).await {
            Ok(bytes) => {
                read_failed = false;
                bytes
            }
            Err(err) => {
                // During a symlink swap a file can be briefly missing; say
                // so once, not every tick, and keep serving the old pair.
                if !read_failed {
                    tracing::warn!(error = %super::error_chain(&err), "certificate reload: keeping the current certificate");
                    metrics.tls_reload(false);
                }
                read_failed = true;
                continue;
            }
        };
        if bytes == seen {
            continue;
        }
        match parse_pair(&bytes, &watch.cert, &watch.key, &provider) {
            Ok(key) => {
                resolver.set(key);
                metrics.tls_reload(true);
                tracing::info!(cert = %watch.cert.display(), "certificate reloaded");
            }
            Err(err) => {
                metrics.tls_reload(false);
                tracing::warn!(error = %super::error_chain(&err), "certificate reload: new pair rejected, keeping the current certificate");
            }
        }
        seen = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (PairBytes, PairBytes) {
        let make = || {
            let key = rcgen::KeyPair::generate().expect("key");
            let params =
                rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
            let cert = params.self_signed(&key).expect("cert");
            PairBytes {
                cert: cert.pem().into_bytes(),
                key: key.serialize_pem().into_bytes(),
            }
        };
        (make(), make())
    }

    fn parse(bytes: &PairBytes) -> Result<CertifiedKey, TlsError> {
        parse_pair(
            bytes,
            Path::new("tls.crt"),
            Path::new("tls.key"),
            &provider(),
        )
    }

    #[test]
    fn a_matching_pair_loads() {
        let (a, _) = pair();
        let key = parse(&a).expect("loads");
        assert_eq!(key.cert.len(), 1);
    }

    #[test]
    fn a_key_from_another_pair_is_rejected_naming_both_files() {
        let (a, b) = pair();
        let mixed = PairBytes {
            cert: a.cert,
            key: b.key,
        };
        let err = parse(&mixed).expect_err("mismatch");
        assert!(matches!(err, TlsError::Pair { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("tls.crt") && text.contains("tls.key"),
            "{text}"
        );
    }

    #[test]
    fn garbage_and_empty_files_are_rejected_with_the_file_named() {
        let (a, _) = pair();
        let no_cert = PairBytes {
            cert: b"hello".to_vec(),
            key: a.key.clone(),
        };
        let err = parse(&no_cert).expect_err("no cert");
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
        assert!(err.to_string().contains("tls.crt"));

        let bad_base64 = PairBytes {
            cert: b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec(),
            key: a.key.clone(),
        };
        assert!(matches!(parse(&bad_base64), Err(TlsError::CertPem { .. })));

        let no_key = PairBytes {
            cert: a.cert.clone(),
            key: Vec::new(),
        };
        let err = parse(&no_key).expect_err("no key");
        assert!(matches!(err, TlsError::Key { .. }), "{err:?}");
        assert!(err.to_string().contains("tls.key"));

        let not_a_cert = PairBytes {
            cert: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
            key: a.key,
        };
        assert!(matches!(parse(&not_a_cert), Err(TlsError::Pair { .. })));
    }

    #[test]
    fn the_resolver_hands_out_the_latest_pair() {
        let (a, b) = pair();
        let resolver = ReloadingResolver::new(parse(&a).expect("a"));
        let first = resolver.current().cert[0].clone();
        resolver.set(parse(&b).expect("b"));
        let second = resolver.current().cert[0].clone();
        assert_ne!(first, second);
    }

    #[test]
    fn the_config_offers_h2_then_http1_and_no_tls_below_1_2() {
        let (a, _) = pair();
        let resolver = Arc::new(ReloadingResolver::new(parse(&a).expect("a")));
        let config = server_config(resolver, provider()).expect("config");
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
