//! TLS for AMT ports (16993, 16995) and other oobkit endpoints.
//!
//! AMT certificates are self-signed or from a private CA, so three policies exist, and the
//! safe one is the default: verify against the Mozilla roots plus any CA file given; or pin the
//! SHA-256 fingerprint of the server certificate; or, only when the user says so, accept any
//! certificate. Handshake signatures are checked in every mode, and the fingerprint seen is
//! always recorded so that a failure can show it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::IoError;

/// How to trust the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsPolicy {
    /// Verify the chain and host name against the Mozilla roots and, if given, the CAs in a
    /// PEM file.
    Verify {
        /// Extra trusted CAs (PEM).
        ca_file: Option<PathBuf>,
    },
    /// Accept exactly the certificate with this SHA-256 fingerprint (of its DER encoding).
    Pin([u8; 32]),
    /// Accept any certificate. Only when the user asked for it (`--insecure`).
    Insecure,
}

impl TlsPolicy {
    /// The policy a program's usual flags ask for: `--fingerprint` pins, `--insecure` accepts
    /// anything (only when asked), otherwise verification with the extra CAs of `--ca`. The
    /// error names the flag for the user.
    pub fn from_flags(
        fingerprint: Option<&str>,
        ca_file: Option<&std::path::Path>,
        insecure: bool,
    ) -> Result<Self, String> {
        match (fingerprint, insecure) {
            (Some(fp), _) => parse_fingerprint(fp).map(Self::Pin).ok_or_else(|| {
                format!("--fingerprint `{fp}` is not a SHA-256 fingerprint (64 hex digits)")
            }),
            (None, true) => Ok(Self::Insecure),
            (None, false) => Ok(Self::Verify {
                ca_file: ca_file.map(Into::into),
            }),
        }
    }
}

/// A server's certificate chain and private key, for the programs' TLS ports.
pub struct ServerIdentity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("fingerprint", &format_fingerprint(&self.fingerprint()))
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// A new self-signed certificate for `names` (DNS names or IP addresses), as AMT ships
    /// one: `(certificate PEM, private key PEM)`, for [`ServerIdentity::from_pem`] or for
    /// keeping across restarts.
    pub fn generate_self_signed(names: &[String]) -> Result<(String, String), IoError> {
        let generated = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|e| IoError::Config(format!("cannot generate a certificate: {e}")))?;
        Ok((generated.cert.pem(), generated.signing_key.serialize_pem()))
    }

    /// From PEM text: the chain (leaf first) and the key. `what` names the source in errors.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], what: &str) -> Result<Self, IoError> {
        let bad = |e: &dyn std::fmt::Display| IoError::Config(format!("{what}: {e}"));
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&e))?;
        if certs.is_empty() {
            return Err(bad(&"no certificate"));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad(&e))?;
        Ok(Self { certs, key })
    }

    /// From PEM files.
    pub fn from_pem_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, IoError> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| IoError::Config(format!("{}: {e}", path.display())))
        };
        Self::from_pem(
            &read(cert)?,
            &read(key)?,
            &format!("{} / {}", cert.display(), key.display()),
        )
    }

    /// The SHA-256 fingerprint of the leaf certificate (what clients pin).
    pub fn fingerprint(&self) -> [u8; 32] {
        fingerprint(self.certs.first().map_or(&[][..], |c| c.as_ref()))
    }

    /// A TLS acceptor with rustls's safe defaults (TLS 1.2 and 1.3, no client certificates).
    pub fn acceptor(self) -> Result<tokio_rustls::TlsAcceptor, IoError> {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_no_client_auth()
                .with_single_cert(self.certs, self.key)
        })
        .map_err(|e| IoError::Config(format!("TLS server configuration: {e}")))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// Formats a fingerprint as colon-separated upper-case hex, as browsers and openssl show it.
pub fn format_fingerprint(fp: &[u8; 32]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses a SHA-256 fingerprint: 64 hex digits, with or without `:` separators.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex: String = text.chars().filter(|c| *c != ':' && *c != ' ').collect();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The SHA-256 fingerprint of a DER certificate.
pub fn fingerprint(cert_der: &[u8]) -> [u8; 32] {
    Sha256::digest(cert_der).into()
}

/// The fingerprint the server presented, filled in during the handshake.
pub type SeenFingerprint = Arc<Mutex<Option<[u8; 32]>>>;

#[derive(Debug)]
struct Verifier {
    policy: TlsPolicy,
    /// The standard verifier, for [`TlsPolicy::Verify`].
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: SeenFingerprint,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(fp);
        match &self.policy {
            TlsPolicy::Verify { .. } => self
                .webpki
                .as_ref()
                .expect("built for Verify")
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            TlsPolicy::Pin(expected) => {
                // Fingerprints are public; a plain comparison leaks nothing.
                if &fp == expected {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "certificate fingerprint {} does not match the pinned {}",
                        format_fingerprint(&fp),
                        format_fingerprint(expected)
                    )))
                }
            }
            TlsPolicy::Insecure => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration for `policy`, and where the fingerprint seen will be recorded.
pub fn client_config(policy: &TlsPolicy) -> Result<(Arc<ClientConfig>, SeenFingerprint), IoError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = match policy {
        TlsPolicy::Verify { ca_file } => {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(path) = ca_file {
                let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                    IoError::Config(format!("cannot read CA file {}: {e}", path.display()))
                })?;
                for cert in certs {
                    let cert = cert.map_err(|e| {
                        IoError::Config(format!("bad certificate in {}: {e}", path.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        IoError::Config(format!("unusable CA in {}: {e}", path.display()))
                    })?;
                }
            }
            Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|e| IoError::Config(format!("TLS verifier: {e}")))?,
            )
        }
        _ => None,
    };
    let seen: SeenFingerprint = Arc::default();
    let verifier = Verifier {
        policy: policy.clone(),
        webpki,
        provider: Arc::clone(&provider),
        seen: Arc::clone(&seen),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IoError::Config(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((Arc::new(config), seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_text_round_trip() {
        let fp = fingerprint(b"certificate");
        let text = format_fingerprint(&fp);
        assert_eq!(text.len(), 95);
        assert_eq!(parse_fingerprint(&text), Some(fp));
        assert_eq!(
            parse_fingerprint(&text.replace(':', "").to_lowercase()),
            Some(fp)
        );
        assert_eq!(parse_fingerprint("AB:CD"), None);
        assert_eq!(parse_fingerprint(&"zz".repeat(32)), None);
    }
}
