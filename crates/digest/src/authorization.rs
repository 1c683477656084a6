//! The Digest answer (`Authorization: Digest ...`): parsing and rendering.

use std::fmt;

use crate::challenge::Params;
use crate::header::{check_no_controls, is_token, parse_credentials, push_quoted};
use crate::{Algorithm, Error, Qop};

/// A Digest `Authorization` value, owned.
///
/// Parsing and rendering are inverse: `Authorization::parse(&a.to_header_value()?)` gives `a`
/// back. `Debug` shows everything but the response digest.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Authorization {
    /// The user name, decoded from `username*` if that form was used; with `userhash` it is
    /// the hex `H(username:realm)`.
    pub username: String,
    /// `userhash=true`: `username` is hashed.
    pub userhash: bool,
    /// The realm.
    pub realm: String,
    /// The server nonce being answered.
    pub nonce: String,
    /// The request target, as the client saw it.
    pub uri: String,
    /// The response digest (hex).
    pub response: String,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Whether `algorithm` was written out (it is MD5 when absent).
    pub algorithm_explicit: bool,
    /// The client nonce.
    pub cnonce: Option<String>,
    /// Echoed opaque data.
    pub opaque: Option<String>,
    /// The qop answered; `None` for RFC 2069.
    pub qop: Option<Qop>,
    /// The nonce count exactly as sent (clients differ: `00000001`, `6`); the digest is over
    /// this text, so it is kept verbatim.
    pub nc: Option<String>,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("username", &self.username)
            .field("userhash", &self.userhash)
            .field("realm", &self.realm)
            .field("nonce", &self.nonce)
            .field("uri", &self.uri)
            .field("response", &"<redacted>")
            .field("algorithm", &self.algorithm)
            .field("cnonce", &self.cnonce)
            .field("opaque", &self.opaque)
            .field("qop", &self.qop)
            .field("nc", &self.nc)
            .finish()
    }
}

/// RFC 8187 `attr-char`: what `username*` may carry without percent-encoding.
fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b)
}

/// Whether a user name can go in a plain quoted `username` (printable ASCII).
fn fits_quoted(username: &str) -> bool {
    username.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Decodes RFC 8187 `UTF-8''percent%20encoded`.
fn decode_ext_value(value: &str) -> Result<String, Error> {
    const BAD: Error = Error::InvalidParam {
        name: "username*",
        reason: "not an RFC 8187 UTF-8 ext-value",
    };
    let mut parts = value.splitn(3, '\'');
    let (Some(charset), Some(_language), Some(encoded)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD);
    };
    if !charset.eq_ignore_ascii_case("UTF-8") {
        return Err(BAD);
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(BAD)?;
                let hex = std::str::from_utf8(hex).map_err(|_| BAD)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| BAD)?);
                i += 3;
            }
            b if is_attr_char(b) => {
                out.push(b);
                i += 1;
            }
            _ => return Err(BAD),
        }
    }
    let decoded = String::from_utf8(out).map_err(|_| BAD)?;
    // A control character in a user name could only serve to forge log lines.
    check_no_controls("username*", &decoded)?;
    Ok(decoded)
}

fn encode_ext_value(value: &str, out: &mut String) {
    out.push_str("UTF-8''");
    for b in value.bytes() {
        if is_attr_char(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xf)]));
        }
    }
}

impl Authorization {
    /// Parses an `Authorization` header value.
    ///
    /// Accepts every formatting style AMT accepts (qop and nc quoted or not, nc padded or
    /// not), `username*` (RFC 8187), and refuses duplicate parameters, a missing required one,
    /// `username` with `username*`, and qop without nc and cnonce.
    ///
    /// ```
    /// use oobkit_digest::{Authorization, Qop};
    /// let a = Authorization::parse(
    ///     r#"Digest username="admin",realm="Digest:19378AAD19791FD4F68E432AFE6F2483",nonce="AqMsAAAAAAAAAAAAuMwmTgZhbCqJVoSv",uri="/wsman",qop="auth",response="bd17886e871b8108526195d5be3640a8",nc="00000003",cnonce="gn09ha""#,
    /// ).unwrap();
    /// assert_eq!(a.username, "admin");
    /// assert_eq!(a.qop, Some(Qop::Auth));
    /// assert_eq!(a.nc_value(), Some(3));
    /// ```
    pub fn parse(value: &str) -> Result<Self, Error> {
        let credentials = parse_credentials(value)?;
        if !credentials.is_scheme("Digest") || credentials.token68.is_some() {
            return Err(Error::NotDigest);
        }
        let params = Params::collect(&credentials.params)?;
        let userhash = params.flag("userhash");
        let username = match (params.get("username"), params.get("username*")) {
            (Some(name), None) => name.to_owned(),
            (None, Some(ext)) if !userhash => decode_ext_value(ext)?,
            (None, None) => return Err(Error::MissingParam("username")),
            _ => {
                return Err(Error::InvalidParam {
                    name: "username*",
                    reason: "not allowed with username or userhash",
                });
            }
        };
        let algorithm = params.algorithm()?;
        let qop = match params.get("qop") {
            Some(name) => {
                Some(Qop::from_name(name).ok_or_else(|| Error::UnsupportedQop(name.to_owned()))?)
            }
            None => None,
        };
        let nc = params.get("nc").map(str::to_owned);
        let cnonce = params.get("cnonce").map(str::to_owned);
        // nc is hex wherever it appears, with or without qop.
        if nc.as_deref().is_some_and(|nc| parse_nc(nc).is_none()) {
            return Err(Error::InvalidParam {
                name: "nc",
                reason: "not 1 to 8 hex digits",
            });
        }
        if qop.is_some() {
            if cnonce.is_none() {
                return Err(Error::MissingParam("cnonce"));
            }
            if nc.is_none() {
                return Err(Error::MissingParam("nc"));
            }
        }
        Ok(Self {
            username,
            userhash,
            realm: params.require("realm")?.to_owned(),
            nonce: params.require("nonce")?.to_owned(),
            uri: params.require("uri")?.to_owned(),
            response: params.require("response")?.to_owned(),
            algorithm: algorithm.unwrap_or(Algorithm::Md5),
            algorithm_explicit: algorithm.is_some(),
            cnonce,
            opaque: params.get("opaque").map(str::to_owned),
            qop,
            nc,
        })
    }

    /// The nonce count as a number, if present and well formed.
    pub fn nc_value(&self) -> Option<u32> {
        self.nc.as_deref().and_then(parse_nc)
    }

    /// Renders the value in the RFC 7616 style: strings quoted, `algorithm`, `qop` and `nc`
    /// bare. A user name outside printable ASCII goes as `username*` (RFC 8187).
    ///
    /// Fails only if a field holds a control character, or `nc` is not a token.
    pub fn to_header_value(&self) -> Result<String, Error> {
        let mut out = String::with_capacity(
            160 + self.username.len() * 3 + self.realm.len() + self.nonce.len() + self.uri.len(),
        );
        check_no_controls("username", &self.username)?;
        if fits_quoted(&self.username) || self.userhash {
            out.push_str("Digest username=");
            push_quoted(&mut out, "username", &self.username)?;
        } else {
            out.push_str("Digest username*=");
            encode_ext_value(&self.username, &mut out);
        }
        out.push_str(", realm=");
        push_quoted(&mut out, "realm", &self.realm)?;
        out.push_str(", nonce=");
        push_quoted(&mut out, "nonce", &self.nonce)?;
        out.push_str(", uri=");
        push_quoted(&mut out, "uri", &self.uri)?;
        if self.algorithm_explicit {
            out.push_str(", algorithm=");
            out.push_str(self.algorithm.name());
        }
        out.push_str(", response=");
        push_quoted(&mut out, "response", &self.response)?;
        if let Some(opaque) = &self.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, "opaque", opaque)?;
        }
        if let Some(qop) = self.qop {
            out.push_str(", qop=");
            out.push_str(qop.name());
        }
        if let Some(nc) = &self.nc {
            if !is_token(nc) {
                return Err(Error::InvalidParam {
                    name: "nc",
                    reason: "not a token",
                });
            }
            out.push_str(", nc=");
            out.push_str(nc);
        }
        if let Some(cnonce) = &self.cnonce {
            out.push_str(", cnonce=");
            push_quoted(&mut out, "cnonce", cnonce)?;
        }
        if self.userhash {
            out.push_str(", userhash=true");
        }
        Ok(out)
    }

    /// The rendered value as an `http::HeaderValue`.
    #[cfg(feature = "http")]
    pub fn to_http_header(&self) -> Result<http::HeaderValue, Error> {
        let value = self.to_header_value()?;
        // `to_header_value` refuses every control character, which is all `from_bytes` refuses.
        Ok(http::HeaderValue::from_bytes(value.as_bytes()).expect("no control characters"))
    }
}

/// 1 to 8 hex digits (RFC 7616 says exactly 8; MeshCentral sends `6`, and AMT takes it).
fn parse_nc(nc: &str) -> Option<u32> {
    if nc.is_empty() || nc.len() > 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(nc, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Authorization {
        Authorization {
            username: "Mufasa".into(),
            userhash: false,
            realm: "http-auth@example.org".into(),
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
            uri: "/dir/index.html".into(),
            response: "8ca523f5e9506fed4657c9700eebdbec".into(),
            algorithm: Algorithm::Md5,
            algorithm_explicit: true,
            cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into()),
            opaque: Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS".into()),
            qop: Some(Qop::Auth),
            nc: Some("00000001".into()),
        }
    }

    #[test]
    fn round_trip() {
        let a = sample();
        assert_eq!(
            Authorization::parse(&a.to_header_value().unwrap()).unwrap(),
            a
        );
    }

    #[test]
    fn username_star_round_trip() {
        let mut a = sample();
        a.username = "Jäsøn Doe".into();
        let v = a.to_header_value().unwrap();
        assert!(
            v.starts_with("Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe,"),
            "{v}"
        );
        assert_eq!(Authorization::parse(&v).unwrap(), a);
    }

    #[test]
    fn three_client_styles_parse() {
        // MeshCommander (bare qop and nc), MeshCentral (all quoted, decimal nc), go (rps#1072).
        for (v, nc) in [
            (
                r#"Digest username="admin", realm="r", nonce="n", uri="/wsman", response="x", qop=auth, nc=00000002, cnonce="c""#,
                2,
            ),
            (
                r#"Digest username="admin", realm="r", nonce="n", uri="/wsman", response="x", qop="auth", nc="6", cnonce="c""#,
                6,
            ),
            (
                r#"Digest username="admin",realm="r",nonce="n",uri="/wsman",qop="auth",response="x",nc="00000003",cnonce="gn09ha""#,
                3,
            ),
        ] {
            assert_eq!(Authorization::parse(v).unwrap().nc_value(), Some(nc), "{v}");
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(Authorization::parse("Basic Zm9v"), Err(Error::NotDigest));
        assert_eq!(
            Authorization::parse(r#"Digest realm="r", nonce="n", uri="/", response="x""#),
            Err(Error::MissingParam("username"))
        );
        assert_eq!(
            Authorization::parse(
                r#"Digest username="u", realm="r", nonce="n", uri="/", response="x", qop=auth, cnonce="c""#
            ),
            Err(Error::MissingParam("nc"))
        );
        assert!(matches!(
            Authorization::parse(
                r#"Digest username="u", realm="r", nonce="n", uri="/", response="x", qop=auth, nc=123456789, cnonce="c""#
            ),
            Err(Error::InvalidParam { name: "nc", .. })
        ));
        assert!(matches!(
            Authorization::parse(
                r#"Digest username="u", username*=UTF-8''u, realm="r", nonce="n", uri="/", response="x""#
            ),
            Err(Error::InvalidParam {
                name: "username*",
                ..
            })
        ));
        assert_eq!(
            Authorization::parse(
                r#"Digest username*=UTF-8''a%0Ab, realm="r", nonce="n", uri="/", response="x""#
            ),
            Err(Error::ControlCharacter("username*"))
        );
        assert!(matches!(
            Authorization::parse(
                r#"Digest username*=UTF-8''%FF, realm="r", nonce="n", uri="/", response="x""#
            ),
            Err(Error::InvalidParam {
                name: "username*",
                ..
            })
        ));
    }

    #[test]
    fn debug_hides_the_response() {
        assert!(!format!("{:?}", sample()).contains("8ca523f5"));
    }
}
