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
//! that does not load (bad PEM, no key, key not matching the certificate,
//! expired or not yet valid) keeps the old one and logs why, once per
//! distinct broken pair. A pair is judged broken only once it has stayed the
//! same for [`Watch::debounce`]: two files renamed one after the other are
//! briefly a mismatched pair, and that is not an error.
//!
//! The served leaf certificate's `notAfter` is exported as
//! `forcebacklog_tls_certificate_not_after_seconds`.

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
use super::x509::{self, Period, Validity};

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
    /// The certificate's validity period could not be read.
    #[error("{}: cannot read the certificate's validity period", path.display())]
    Validity {
        /// The certificate file.
        path: PathBuf,
    },
    /// The certificate's `notAfter` has passed.
    #[error("{}: the certificate expired at {not_after} (now {now})", path.display())]
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// `notAfter`, RFC 3339.
        not_after: String,
        /// The current time, RFC 3339.
        now: String,
    },
    /// The certificate's `notBefore` is still to come.
    #[error("{}: the certificate is not valid before {not_before} (now {now})", path.display())]
    NotYetValid {
        /// The certificate file.
        path: PathBuf,
        /// `notBefore`, RFC 3339.
        not_before: String,
        /// The current time, RFC 3339.
        now: String,
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

/// A pair that parsed, with its leaf certificate's validity period.
#[derive(Debug)]
pub struct Loaded {
    /// What rustls serves.
    pub key: CertifiedKey,
    /// `notBefore` and `notAfter` of the leaf.
    pub validity: Validity,
}

impl Loaded {
    /// An error when `now` (Unix seconds) is outside the validity period.
    pub fn check_time(&self, now: i64, cert_path: &Path) -> Result<(), TlsError> {
        match self.validity.at(now) {
            Period::Valid => Ok(()),
            Period::Expired => Err(TlsError::Expired {
                path: cert_path.to_path_buf(),
                not_after: x509::rfc3339(self.validity.not_after),
                now: x509::rfc3339(now),
            }),
            Period::NotYetValid => Err(TlsError::NotYetValid {
                path: cert_path.to_path_buf(),
                not_before: x509::rfc3339(self.validity.not_before),
                now: x509::rfc3339(now),
            }),
        }
    }
}

/// Parses a pair, checks that the key belongs to the certificate, and reads
/// the leaf's validity period (not checked against the clock here: see
/// [`Loaded::check_time`]).
pub fn parse_pair(
    bytes: &PairBytes,
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Loaded, TlsError> {
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
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Pair {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    })?;
    let validity = key
        .cert
        .first()
        .and_then(|leaf| x509::validity(leaf))
        .ok_or_else(|| TlsError::Validity {
            path: cert_path.to_path_buf(),
        })?;
    Ok(Loaded { key, validity })
}

/// Reads, parses and checks a pair against the clock: what start-up needs.
pub async fn load(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<(PairBytes, Loaded), TlsError> {
    let bytes = read_pair(cert, key).await?;
    let loaded = parse_pair(&bytes, cert, key, provider)?;
    loaded.check_time(x509::now(), cert)?;
    Ok((bytes, loaded))
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
    /// How long a pair that does not load (or files that cannot be read)
    /// must stay the same before it counts as an error.
    pub debounce: Duration,
}

/// How many times one look re-reads files that keep changing before it
/// judges what it has.
const SETTLE_ATTEMPTS: u32 = 5;

/// Polls the files until the task is dropped; swaps in every new pair that
/// loads and is valid now, keeps the old one (with a warning) otherwise.
///
/// `seen` is the pair being served; a pair rejected only because it is not
/// valid yet is looked at again at every tick and served once it is.
pub async fn watch(
    watch: Watch,
    seen: PairBytes,
    resolver: Arc<ReloadingResolver>,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
) {
    let mut ticker = tokio::time::interval(watch.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate
    let mut reloader = Reloader {
        watch,
        seen,
        resolver,
        provider,
        metrics,
        read_failed: false,
        waiting: None,
    };
    loop {
        ticker.tick().await;
        reloader.look().await;
    }
}

/// The state of [`watch`] between two looks.
struct Reloader {
    watch: Watch,
    /// The pair being served, or the last one rejected.
    seen: PairBytes,
    resolver: Arc<ReloadingResolver>,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
    /// The files were unreadable at the last look (said once).
    read_failed: bool,
    /// A pair rejected as not valid yet, looked at again at every tick.
    waiting: Option<PairBytes>,
}

impl Reloader {
    /// One look at the files.
    async fn look(&mut self) {
        match settle(&self.watch, &self.seen, &self.provider).await {
            Settled::Unchanged => self.read_failed = false,
            Settled::Unreadable(err) => {
                // Say so once, not every tick, and keep serving the old pair.
                if !self.read_failed {
                    tracing::warn!(error = %crate::error_chain(&err), "certificate reload: keeping the current certificate");
                    self.metrics.tls_reload(false);
                }
                self.read_failed = true;
            }
            Settled::Changed(bytes, loaded) => {
                self.read_failed = false;
                self.take(bytes, loaded);
            }
        }
    }

    /// Serves a new pair that loads and is valid now; keeps the current
    /// one (with a warning) otherwise.
    fn take(&mut self, bytes: PairBytes, loaded: Result<Loaded, TlsError>) {
        let cert = &self.watch.cert;
        let checked =
            loaded.and_then(|loaded| loaded.check_time(x509::now(), cert).map(|()| loaded));
        match checked {
            Ok(loaded) => {
                self.metrics.tls_not_after(loaded.validity.not_after);
                self.resolver.set(loaded.key);
                self.metrics.tls_reload(true);
                tracing::info!(
                    cert = %cert.display(),
                    not_after = %x509::rfc3339(loaded.validity.not_after),
                    "certificate reloaded"
                );
                self.seen = bytes;
                self.waiting = None;
            }
            Err(err @ TlsError::NotYetValid { .. }) => {
                if self.waiting.as_ref() != Some(&bytes) {
                    self.metrics.tls_reload(false);
                    tracing::warn!(error = %crate::error_chain(&err), "certificate reload: new pair not valid yet, keeping the current certificate until it is");
                    self.waiting = Some(bytes);
                }
            }
            Err(err) => {
                self.metrics.tls_reload(false);
                tracing::warn!(error = %crate::error_chain(&err), "certificate reload: new pair rejected, keeping the current certificate");
                self.seen = bytes;
                self.waiting = None;
            }
        }
    }
}

/// What one look at the files found.
enum Settled {
    /// The files hold the pair being served (or the broken pair already
    /// reported).
    Unchanged,
    /// The files stayed unreadable for the debounce time.
    Unreadable(TlsError),
    /// A new pair, parsed or not (a parse error has stayed the same for the
    /// debounce time).
    Changed(PairBytes, Result<Loaded, TlsError>),
}

/// Reads the pair; when it does not read or parse, waits
/// [`Watch::debounce`] and reads again, and judges it only when the second
/// read finds the same thing (two renames in a row are briefly a mismatched
/// pair).
async fn settle(watch: &Watch, seen: &PairBytes, provider: &CryptoProvider) -> Settled {
    let mut last: Option<Result<PairBytes, ()>> = None;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let read = read_pair(&watch.cert, &watch.key).await;
        let outcome = match read {
            Ok(bytes) if &bytes == seen => return Settled::Unchanged,
            Ok(bytes) => match parse_pair(&bytes, &watch.cert, &watch.key, provider) {
                Ok(loaded) => return Settled::Changed(bytes, Ok(loaded)),
                Err(err) => {
                    let same = matches!(&last, Some(Ok(previous)) if *previous == bytes);
                    if same || attempts >= SETTLE_ATTEMPTS {
                        return Settled::Changed(bytes, Err(err));
                    }
                    Ok(bytes)
                }
            },
            Err(err) => {
                if matches!(last, Some(Err(()))) || attempts >= SETTLE_ATTEMPTS {
                    return Settled::Unreadable(err);
                }
                Err(())
            }
        };
        last = Some(outcome);
        tokio::time::sleep(watch.debounce).await;
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

    fn parse(bytes: &PairBytes) -> Result<Loaded, TlsError> {
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
        let loaded = parse(&a).expect("loads");
        assert_eq!(loaded.key.cert.len(), 1);
        assert!(loaded.check_time(x509::now(), Path::new("tls.crt")).is_ok());
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

    fn dated(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> PairBytes {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let cert = params.self_signed(&key).expect("cert");
        PairBytes {
            cert: cert.pem().into_bytes(),
            key: key.serialize_pem().into_bytes(),
        }
    }

    #[test]
    fn expired_and_future_certificates_are_refused_naming_file_and_dates() {
        let path = Path::new("/certs/tls.crt");
        let expired = parse(&dated((2020, 1, 1), (2021, 1, 1))).expect("parses");
        let err = expired.check_time(x509::now(), path).expect_err("expired");
        assert!(matches!(err, TlsError::Expired { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "/certs/tls.crt: the certificate expired at 2021-01-01T00:00:00Z (now 20"
            ),
            "{text}"
        );

        let future = parse(&dated((2099, 1, 1), (2100, 1, 1))).expect("parses");
        let err = future.check_time(x509::now(), path).expect_err("future");
        assert!(
            err.to_string().starts_with(
                "/certs/tls.crt: the certificate is not valid before 2099-01-01T00:00:00Z"
            ),
            "{err}"
        );
        let current = parse(&dated((2020, 1, 1), (2099, 1, 1))).expect("parses");
        assert!(current.check_time(x509::now(), path).is_ok());
        assert_eq!(current.validity.not_after, 4_070_908_800);
    }

    #[test]
    fn the_resolver_hands_out_the_latest_pair() {
        let (a, b) = pair();
        let resolver = ReloadingResolver::new(parse(&a).expect("a").key);
        let first = resolver.current().cert[0].clone();
        resolver.set(parse(&b).expect("b").key);
        let second = resolver.current().cert[0].clone();
        assert_ne!(first, second);
    }

    #[test]
    fn the_config_offers_h2_then_http1_and_no_tls_below_1_2() {
        let (a, _) = pair();
        let resolver = Arc::new(ReloadingResolver::new(parse(&a).expect("a").key));
        let config = server_config(resolver, provider()).expect("config");
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
