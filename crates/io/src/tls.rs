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
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
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
