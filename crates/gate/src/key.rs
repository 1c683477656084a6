//! Verifying keys, each pinned to one JWS algorithm, so that a key can only ever verify the
//! algorithm it was configured for (an RS256 public key is never an HS256 secret).

use base64::Engine as _;
use hmac::{KeyInit, Mac};

/// JWS algorithms the gate can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256 and a shared secret (LabOrchestrator's default).
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048 to 8192-bit keys.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// The name in a JWS header.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithm a JWS header names, if it is one of these (`none` never is).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "HS256" => Self::Hs256,
            "RS256" => Self::Rs256,
            "ES256" => Self::Es256,
            "EdDSA" => Self::EdDsa,
            _ => return None,
        })
    }
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a PEM `PUBLIC KEY` (or `RSA PUBLIC KEY`) block.
    #[error("not a PEM public key (expected -----BEGIN PUBLIC KEY-----)")]
    NotPem,
    /// The DER inside is not a SubjectPublicKeyInfo this gate reads.
    #[error("the public key is not an RSA, P-256 or Ed25519 SubjectPublicKeyInfo ({0})")]
    BadSpki(&'static str),
    /// The key's type does not fit the algorithm it was configured for.
    #[error("a {found} key cannot verify {algorithm}")]
    WrongType {
        /// The algorithm configured.
        algorithm: &'static str,
        /// The key found.
        found: &'static str,
    },
    /// An empty HMAC secret.
    #[error("the HS256 secret is empty")]
    EmptySecret,
}

/// A key and the one algorithm it verifies.
#[derive(Clone)]
pub struct VerifyingKey {
    algorithm: Algorithm,
    /// The HMAC secret, or the public key in the form ring takes (PKCS#1 RSAPublicKey, the
    /// uncompressed P-256 point, the 32 Ed25519 bytes).
    material: Vec<u8>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The HMAC secret is a secret; public keys are shown by size only too.
        f.debug_struct("VerifyingKey")
            .field("algorithm", &self.algorithm)
            .field("bytes", &self.material.len())
            .finish()
    }
}

/// The DER object identifiers of the key types read here.
const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70];

/// One DER element: (tag, contents, rest).
fn der(input: &[u8]) -> Result<(u8, &[u8], &[u8]), KeyError> {
    let bad = KeyError::BadSpki("truncated DER");
    let (&tag, rest) = input.split_first().ok_or(bad.clone())?;
    let (&first, rest) = rest.split_first().ok_or(bad.clone())?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 3 || rest.len() < n {
            return Err(KeyError::BadSpki("bad DER length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad);
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The key type and the key bytes of a SubjectPublicKeyInfo.
fn spki(der_bytes: &[u8]) -> Result<(&'static str, Vec<u8>), KeyError> {
    let (tag, spki, _) = der(der_bytes)?;
    if tag != 0x30 {
        return Err(KeyError::BadSpki("not a SEQUENCE"));
    }
    let (tag, algorithm, rest) = der(spki)?;
    if tag != 0x30 {
        return Err(KeyError::BadSpki("no AlgorithmIdentifier"));
    }
    let (tag, oid, params) = der(algorithm)?;
    if tag != 0x06 {
        return Err(KeyError::BadSpki("no algorithm OID"));
    }
    let (tag, bits, _) = der(rest)?;
    if tag != 0x03 || bits.first() != Some(&0) {
        return Err(KeyError::BadSpki("no public key BIT STRING"));
    }
    let key = bits[1..].to_vec();
    let kind = if oid == OID_RSA {
        "RSA"
    } else if oid == OID_EC {
        let (tag, curve, _) = der(params)?;
        if tag != 0x06 || curve != OID_P256 {
            return Err(KeyError::BadSpki("an EC key on a curve other than P-256"));
        }
        "P-256"
    } else if oid == OID_ED25519 {
        "Ed25519"
    } else {
        return Err(KeyError::BadSpki("an unknown key algorithm"));
    };
    Ok((kind, key))
}

impl VerifyingKey {
    /// An HS256 key: the secret's bytes as given (LabOrchestrator takes a text secret's UTF-8
    /// bytes; nothing is base64-decoded).
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Ok(Self {
            algorithm: Algorithm::Hs256,
            material: secret.to_vec(),
        })
    }

    /// A public key for `algorithm` (RS256, ES256 or EdDSA) from PEM: `PUBLIC KEY`
    /// (SubjectPublicKeyInfo), or `RSA PUBLIC KEY` (PKCS#1) for RS256.
    pub fn public_pem(algorithm: Algorithm, pem: &str) -> Result<Self, KeyError> {
        let (label, der_bytes) = pem_block(pem)?;
        let (kind, material) = match label {
            "PUBLIC KEY" => spki(&der_bytes)?,
            "RSA PUBLIC KEY" => ("RSA", der_bytes),
            _ => return Err(KeyError::NotPem),
        };
        let wanted = match algorithm {
            Algorithm::Rs256 => "RSA",
            Algorithm::Es256 => "P-256",
            Algorithm::EdDsa => "Ed25519",
            Algorithm::Hs256 => "secret",
        };
        if kind != wanted {
            return Err(KeyError::WrongType {
                algorithm: algorithm.name(),
                found: kind,
            });
        }
        Ok(Self {
            algorithm,
            material,
        })
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether `signature` signs `message` under this key (constant time for HMAC).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature::{
            ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
        };
        match self.algorithm {
            Algorithm::Hs256 => {
                let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.material) else {
                    return false;
                };
                mac.update(message);
                mac.verify_slice(signature).is_ok()
            }
            Algorithm::Rs256 => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.material)
                .verify(message, signature)
                .is_ok(),
            Algorithm::Es256 => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.material)
                .verify(message, signature)
                .is_ok(),
            Algorithm::EdDsa => UnparsedPublicKey::new(&ED25519, &self.material)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

/// The label and bytes of the first PEM block.
fn pem_block(pem: &str) -> Result<(&str, Vec<u8>), KeyError> {
    let start = pem.find("-----BEGIN ").ok_or(KeyError::NotPem)?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or(KeyError::NotPem)?;
    let label = &rest[..label_end];
    let body = &rest[label_end + 5..];
    let end = body
        .find(&format!("-----END {label}-----"))
        .ok_or(KeyError::NotPem)?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der_bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| KeyError::NotPem)?;
    Ok((label, der_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_pinned_to_their_algorithm() {
        assert!(matches!(
            VerifyingKey::hs256(b""),
            Err(KeyError::EmptySecret)
        ));
        // An Ed25519 SubjectPublicKeyInfo (RFC 8410 example key).
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let key = VerifyingKey::public_pem(Algorithm::EdDsa, pem).unwrap();
        assert_eq!(key.algorithm(), Algorithm::EdDsa);
        assert!(matches!(
            VerifyingKey::public_pem(Algorithm::Rs256, pem),
            Err(KeyError::WrongType {
                found: "Ed25519",
                ..
            })
        ));
        assert!(matches!(
            VerifyingKey::public_pem(Algorithm::Hs256, pem),
            Err(KeyError::WrongType { .. })
        ));
        assert_eq!(
            VerifyingKey::public_pem(Algorithm::EdDsa, "garbage").unwrap_err(),
            KeyError::NotPem
        );
    }
}
