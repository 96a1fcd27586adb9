//! Certificates made at test time (rcgen), and a certificate directory laid
//! out the way the kubelet lays out a Secret volume.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
    SerialNumber,
};
use rustls::pki_types::CertificateDer;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// A test certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key.
#[derive(Clone)]
pub struct Issued {
    /// PEM certificate (leaf only).
    pub cert_pem: String,
    /// PEM PKCS#8 key.
    pub key_pem: String,
    /// The leaf in DER, to compare with what a handshake presents.
    pub cert_der: CertificateDer<'static>,
}

impl Ca {
    /// A fresh CA.
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "forcebacklog test CA");
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA cert");
        Self { issuer }
    }

    /// The CA certificate, for a client's trust store.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for `localhost` and 127.0.0.1 with this common
    /// name and serial number.
    pub fn issue(&self, common_name: &str, serial: u64) -> Issued {
        self.issue_with(common_name, serial, |_| {})
    }

    /// Like [`Ca::issue`], valid from `not_before` to `not_after`
    /// (year, month, day; midnight UTC).
    pub fn issue_dated(
        &self,
        common_name: &str,
        serial: u64,
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> Issued {
        self.issue_with(common_name, serial, |params| {
            params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
            params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        })
    }

    fn issue_with(
        &self,
        common_name: &str,
        serial: u64,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Issued {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(SerialNumber::from(serial));
        adjust(&mut params);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &*self.issuer).expect("leaf cert");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
        }
    }
}

/// A Secret volume as the kubelet writes it:
///
/// ```text
/// ..2024_01_01_00_00_00.000000001/tls.crt
/// ..2024_01_01_00_00_00.000000001/tls.key
/// ..data -> ..2024_01_01_00_00_00.000000001
/// tls.crt -> ..data/tls.crt
/// tls.key -> ..data/tls.key
/// ```
///
/// An update writes a new timestamped directory, points `..data_tmp` at it,
/// renames `..data_tmp` over `..data` (atomic), and removes the old one.
pub struct SecretVolume {
    /// The mounted directory.
    pub dir: tempfile::TempDir,
    generation: u32,
}

impl SecretVolume {
    /// A volume holding `issued`.
    pub fn new(issued: &Issued) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut volume = Self { dir, generation: 0 };
        volume.update(issued.cert_pem.as_bytes(), issued.key_pem.as_bytes());
        symlink("..data/tls.crt", volume.cert()).expect("tls.crt link");
        symlink("..data/tls.key", volume.key()).expect("tls.key link");
        volume
    }

    /// The path a server is given for the certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    /// The path a server is given for the key.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }

    /// The kubelet's atomic update to a new pair.
    pub fn swap(&mut self, issued: &Issued) {
        self.update(issued.cert_pem.as_bytes(), issued.key_pem.as_bytes());
    }

    /// The kubelet's atomic update to arbitrary file contents.
    pub fn update(&mut self, cert: &[u8], key: &[u8]) {
        let root = self.dir.path();
        self.generation += 1;
        let name = format!("..2024_01_01_00_00_00.{:09}", self.generation);
        let new_dir = root.join(&name);
        fs::create_dir(&new_dir).expect("timestamped dir");
        fs::write(new_dir.join("tls.crt"), cert).expect("write tls.crt");
        fs::write(new_dir.join("tls.key"), key).expect("write tls.key");
        let old = fs::read_link(root.join("..data")).ok();
        let tmp = root.join("..data_tmp");
        symlink(&name, &tmp).expect("..data_tmp");
        fs::rename(&tmp, root.join("..data")).expect("rename ..data");
        if let Some(old) = old {
            fs::remove_dir_all(root.join(old)).expect("remove old dir");
        }
    }
}

/// Writes a pair into plain files in `dir`, returning (cert, key) paths.
pub fn write_plain(dir: &Path, issued: &Issued) -> (PathBuf, PathBuf) {
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    fs::write(&cert, &issued.cert_pem).expect("write cert");
    fs::write(&key, &issued.key_pem).expect("write key");
    (cert, key)
}
