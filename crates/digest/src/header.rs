//! The RFC 7235 grammar of `WWW-Authenticate` and `Authorization` values, for any scheme.
//!
//! ```text
//! WWW-Authenticate = 1#challenge
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! token68          = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```
//!
//! The list syntax is ambiguous on its face (`Basic realm="a", Digest realm="b"`: is `Digest` a
//! parameter or a scheme?). It resolves by looking one token ahead: a token followed by `=` is a
//! parameter of the current challenge, any other token starts a new challenge.

use std::borrow::Cow;

use crate::ParseError;

/// Longest header value accepted, in bytes. Real challenges are a few hundred bytes.
pub const MAX_HEADER_LEN: usize = 8 * 1024;
/// Most challenges accepted in one header value (or across the values of one response).
pub const MAX_CHALLENGES: usize = 16;
/// Most parameters accepted in one challenge. Digest defines eleven.
pub const MAX_PARAMS: usize = 32;

/// One challenge (or one set of credentials): a scheme with either a token68 or parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// The auth-scheme as written; compare it case-insensitively.
    pub scheme: &'a str,
    /// The token68 form (`Basic dXNlcjpwYXNz`), if the challenge uses it.
    pub token68: Option<&'a str>,
    /// The auth-params, in order. Quoted values are unescaped.
    pub params: Vec<Param<'a>>,
}

/// One auth-param.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    /// Name as written; compare it case-insensitively.
    pub name: &'a str,
    /// Value with quoting removed and `\x` escapes resolved.
    pub value: Cow<'a, str>,
    /// Whether the value was a quoted-string (some peers care, most do not).
    pub quoted: bool,
}

impl Challenge<'_> {
    /// Whether the scheme is `scheme`, ignoring case.
    pub fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }
}

/// Parses a `WWW-Authenticate` (or `Proxy-Authenticate`) header value into its challenges.
///
/// ```
/// let list = oobkit_digest::parse_challenges(
///     r#"Basic realm="simple", Digest realm="a\"b", nonce=abc, qop="auth-int, auth""#,
/// ).unwrap();
/// assert_eq!(list.len(), 2);
/// assert!(list[1].is_scheme("digest"));
/// assert_eq!(list[1].params[0].value, "a\"b");
/// ```
pub fn parse_challenges(value: &str) -> Result<Vec<Challenge<'_>>, ParseError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(ParseError::TooLong {
            len: value.len(),
            max: MAX_HEADER_LEN,
        });
    }
    let mut cursor = Cursor { s: value, pos: 0 };
    let mut challenges: Vec<Challenge<'_>> = Vec::new();
    loop {
        // Empty list elements (`,,`) are allowed by RFC 7230 section 7.
        cursor.skip_ows();
        while cursor.eat(b',') {
            cursor.skip_ows();
        }
        if cursor.at_end() {
            break;
        }
        if challenges.len() == MAX_CHALLENGES {
            return Err(ParseError::TooManyChallenges {
                max: MAX_CHALLENGES,
            });
        }
        challenges.push(cursor.challenge()?);
    }
    if challenges.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(challenges)
}

/// Parses an `Authorization` (or `Proxy-Authorization`) header value: one scheme and its
/// credentials.
///
/// ```
/// let c = oobkit_digest::parse_credentials(r#"Digest username="Mufasa", nc=00000001"#).unwrap();
/// assert!(c.is_scheme("Digest"));
/// assert_eq!(c.params[1].value, "00000001");
/// ```
pub fn parse_credentials(value: &str) -> Result<Challenge<'_>, ParseError> {
    let mut list = parse_challenges(value)?;
    if list.len() > 1 {
        // The grammar has room for exactly one; a second scheme means garbage after the first.
        // The scheme is a non-empty slice of `value`, so the offset indexes a byte of it.
        let offset = list[1].scheme.as_ptr() as usize - value.as_ptr() as usize;
        return Err(ParseError::Unexpected {
            offset,
            byte: value.as_bytes()[offset],
        });
    }
    // `parse_challenges` never returns an empty list.
    Ok(list.remove(0))
}

/// True for RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn unexpected(&self) -> ParseError {
        match self.peek() {
            Some(byte) => ParseError::Unexpected {
                offset: self.pos,
                byte,
            },
            None => ParseError::UnexpectedEnd,
        }
    }

    /// A token at the cursor, or an error if there is none.
    fn token(&mut self) -> Result<&'a str, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.unexpected());
        }
        // tchars are ASCII, so both ends are char boundaries.
        Ok(&self.s[start..self.pos])
    }

    /// Whether the bytes from `at` on are OWS followed by `,` or the end.
    fn element_ends_at(&self, mut at: usize) -> bool {
        while matches!(self.bytes().get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        matches!(self.bytes().get(at), None | Some(b','))
    }

    /// A token68 at the cursor if one stands there as the whole rest of the list element.
    fn try_token68(&mut self) -> Option<&'a str> {
        let bytes = self.bytes();
        let mut end = self.pos;
        while bytes.get(end).copied().is_some_and(is_token68_char) {
            end += 1;
        }
        if end == self.pos {
            return None;
        }
        while bytes.get(end) == Some(&b'=') {
            end += 1;
        }
        if !self.element_ends_at(end) {
            return None;
        }
        let token = &self.s[self.pos..end];
        self.pos = end;
        Some(token)
    }

    /// Whether an auth-param (`token BWS "="`) starts at the cursor, without consuming it.
    fn param_starts_here(&self) -> bool {
        let bytes = self.bytes();
        let mut at = self.pos;
        while bytes.get(at).copied().is_some_and(is_tchar) {
            at += 1;
        }
        if at == self.pos {
            return false;
        }
        while matches!(bytes.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        // `a==` is a token68 ending in padding, never a parameter with an empty value.
        bytes.get(at) == Some(&b'=') && bytes.get(at + 1) != Some(&b'=')
    }

    fn challenge(&mut self) -> Result<Challenge<'a>, ParseError> {
        let scheme = self.token()?;
        let mut challenge = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        let before_space = self.pos;
        self.skip_ows();
        if self.at_end() || self.peek() == Some(b',') {
            return Ok(challenge);
        }
        if self.pos == before_space {
            // The scheme must be followed by a space before its parameters.
            return Err(self.unexpected());
        }
        if !self.param_starts_here() {
            return match self.try_token68() {
                Some(token68) => {
                    challenge.token68 = Some(token68);
                    Ok(challenge)
                }
                None => Err(self.unexpected()),
            };
        }
        // Parameters: `name=value` separated by commas, until a token that is not followed by
        // `=`, which starts the next challenge.
        loop {
            if challenge.params.len() == MAX_PARAMS {
                return Err(ParseError::TooManyParams { max: MAX_PARAMS });
            }
            challenge.params.push(self.param()?);
            let after_param = self.pos;
            self.skip_ows();
            if self.at_end() {
                return Ok(challenge);
            }
            if !self.eat(b',') {
                return Err(self.unexpected());
            }
            self.skip_ows();
            while self.eat(b',') {
                self.skip_ows();
            }
            if self.at_end() {
                return Ok(challenge);
            }
            if !self.param_starts_here() {
                // Next challenge: leave the cursor just after this parameter so the list loop
                // sees the comma.
                self.pos = after_param;
                return Ok(challenge);
            }
        }
    }

    fn param(&mut self) -> Result<Param<'a>, ParseError> {
        let name = self.token()?;
        self.skip_ows();
        if !self.eat(b'=') {
            return Err(self.unexpected());
        }
        self.skip_ows();
        if self.peek() == Some(b'"') {
            let value = self.quoted_string()?;
            Ok(Param {
                name,
                value,
                quoted: true,
            })
        } else {
            let value = self.token()?;
            Ok(Param {
                name,
                value: Cow::Borrowed(value),
                quoted: false,
            })
        }
    }

    /// A quoted-string at the cursor (which stands on the opening quote).
    fn quoted_string(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        let bytes = self.bytes();
        let mut has_escape = false;
        loop {
            match bytes.get(self.pos) {
                None => return Err(ParseError::UnterminatedQuote { offset: open }),
                Some(b'"') => break,
                Some(b'\\') => {
                    has_escape = true;
                    match bytes.get(self.pos + 1) {
                        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                        Some(&b) if b == b'\t' || b >= 0x20 && b != 0x7f => self.pos += 2,
                        Some(_) => {
                            self.pos += 1;
                            return Err(self.unexpected());
                        }
                        None => return Err(ParseError::UnterminatedQuote { offset: open }),
                    }
                }
                // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                Some(&b) if b == b'\t' || b >= 0x20 && b != 0x7f => self.pos += 1,
                Some(_) => return Err(self.unexpected()),
            }
        }
        let inner = &self.s[start..self.pos];
        self.pos += 1; // closing quote
        if !has_escape {
            return Ok(Cow::Borrowed(inner));
        }
        let mut out = Vec::with_capacity(inner.len());
        let mut iter = inner.bytes();
        while let Some(b) = iter.next() {
            if b == b'\\' {
                // The scan above guarantees a byte follows every backslash.
                out.extend(iter.next());
            } else {
                out.push(b);
            }
        }
        // Removing ASCII backslashes from valid UTF-8 can split a multi-byte sequence only if a
        // backslash escaped a continuation byte; refuse that.
        String::from_utf8(out)
            .map(Cow::Owned)
            .map_err(|_| ParseError::InvalidUtf8 { offset: open })
    }
}

/// Appends `value` to `out` as a quoted-string, escaping `"` and `\`.
///
/// Refuses control characters, which have no place in a header and would allow injection.
pub(crate) fn push_quoted(
    out: &mut String,
    field: &'static str,
    value: &str,
) -> Result<(), crate::Error> {
    out.push('"');
    let mut run_start = 0;
    for (i, &b) in value.as_bytes().iter().enumerate() {
        if is_control(b) {
            return Err(crate::Error::ControlCharacter(field));
        }
        if b == b'"' || b == b'\\' {
            // ASCII, so `i` is a char boundary; the byte itself starts the next run.
            out.push_str(&value[run_start..i]);
            out.push('\\');
            run_start = i;
        }
    }
    out.push_str(&value[run_start..]);
    out.push('"');
    Ok(())
}

fn is_control(b: u8) -> bool {
    b < 0x20 && b != b'\t' || b == 0x7f
}

/// Refuses CTL characters (and DEL) in a value that will be written into a header.
pub(crate) fn check_no_controls(field: &'static str, value: &str) -> Result<(), crate::Error> {
    if value.bytes().any(is_control) {
        return Err(crate::Error::ControlCharacter(field));
    }
    Ok(())
}

/// Whether `value` can be written as a bare token.
pub(crate) fn is_token(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(is_tchar)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<'a>(c: &'a Challenge<'_>) -> Vec<(&'a str, &'a str)> {
        c.params.iter().map(|p| (p.name, &*p.value)).collect()
    }

    #[test]
    fn rfc7235_example_with_two_challenges() {
        let v = r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#;
        let list = parse_challenges(v).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].scheme, "Newauth");
        assert_eq!(
            names(&list[0]),
            [
                ("realm", "apps"),
                ("type", "1"),
                ("title", "Login to \"apps\"")
            ]
        );
        assert_eq!(list[1].scheme, "Basic");
        assert_eq!(names(&list[1]), [("realm", "simple")]);
    }

    #[test]
    fn token68_and_bare_scheme() {
        let list = parse_challenges("Negotiate, Basic dXNlcjpwYXNz==, Bearer").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].scheme, "Negotiate");
        assert!(list[0].params.is_empty() && list[0].token68.is_none());
        assert_eq!(list[1].token68, Some("dXNlcjpwYXNz=="));
        assert_eq!(list[2].scheme, "Bearer");
    }

    #[test]
    fn amt_challenge_with_irregular_spacing() {
        let v = r#"Digest realm="Digest:2517B2332AFD88353D5F5FD352697901", nonce="QYePBLMVAAAAAAAAjfXveceOM5bNfu/K",stale="false",qop="auth-int, auth""#;
        let list = parse_challenges(v).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(
            names(&list[0]),
            [
                ("realm", "Digest:2517B2332AFD88353D5F5FD352697901"),
                ("nonce", "QYePBLMVAAAAAAAAjfXveceOM5bNfu/K"),
                ("stale", "false"),
                ("qop", "auth-int, auth"),
            ]
        );
    }

    #[test]
    fn bws_around_equals_and_empty_elements() {
        let list = parse_challenges(" ,Digest realm = \"r\" ,, nonce= n ,").unwrap();
        assert_eq!(names(&list[0]), [("realm", "r"), ("nonce", "n")]);
    }

    #[test]
    fn non_ascii_in_quoted_string_is_kept() {
        let list = parse_challenges("Digest realm=\"Jäsøn\"").unwrap();
        assert_eq!(list[0].params[0].value, "Jäsøn");
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(parse_challenges("  "), Err(ParseError::Empty));
        assert_eq!(
            parse_challenges("Digest realm=\"abc"),
            Err(ParseError::UnterminatedQuote { offset: 13 })
        );
        assert_eq!(
            parse_challenges("Digest realm="),
            Err(ParseError::UnexpectedEnd)
        );
        assert!(matches!(
            parse_challenges("Digest realm=\"a\nb\""),
            Err(ParseError::Unexpected { byte: b'\n', .. })
        ));
        assert!(matches!(
            parse_challenges("Digest realm=a b"),
            Err(ParseError::Unexpected { byte: b'b', .. })
        ));
        let long = "a".repeat(MAX_HEADER_LEN + 1);
        assert!(matches!(
            parse_challenges(&long),
            Err(ParseError::TooLong { .. })
        ));
        let many = "Basic, ".repeat(MAX_CHALLENGES + 1);
        assert_eq!(
            parse_challenges(&many),
            Err(ParseError::TooManyChallenges {
                max: MAX_CHALLENGES
            })
        );
        let params: String = (0..=MAX_PARAMS).map(|i| format!("p{i}=1,")).collect();
        assert_eq!(
            parse_challenges(&format!("Digest {params}")),
            Err(ParseError::TooManyParams { max: MAX_PARAMS })
        );
    }

    #[test]
    fn credentials_refuse_a_second_scheme() {
        assert!(parse_credentials("Digest a=1, Basic").is_err());
        assert_eq!(
            parse_credentials("Basic Zm9v").unwrap().token68,
            Some("Zm9v")
        );
    }
}
