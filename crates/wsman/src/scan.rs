//! The markup of a document that is a `str` already, cut into tokens by quick-xml's own grammar
//! pieces ([`ElementParser`], [`PiParser`], [`name_len`]) without checking each slice for UTF-8
//! again.
//!
//! quick-xml's `Reader::from_str` runs `str::from_utf8` on every name, text and tag it hands out,
//! because the same reader also serves byte sources: a quarter of its instructions on a WS-Man
//! reply. Here every slice is cut from the `str` at ASCII delimiters (`<`, `>`, `&`, `;`,
//! quotes), so it is a `str` by construction. What is accepted and refused is quick-xml's:
//! the same start, end, empty, text, reference, CDATA, comment and processing-instruction rules,
//! end names checked against the open element, a leading byte-order mark dropped (a property
//! test compares both on arbitrary documents, token by token).

use quick_xml::parser::{ElementParser, Parser, PiParser};
use quick_xml::utils::{is_whitespace, name_len};

/// One piece of markup or text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    /// `<content>`: an element starts; its name is `content[..name_len]`.
    Start { content: &'a str, name_len: usize },
    /// `<content/>`.
    Empty { content: &'a str, name_len: usize },
    /// `</name>`, checked against the innermost open element.
    End,
    /// Character data up to the next markup or reference, as written (line ends unchanged).
    Text(&'a str),
    /// `&name;`: the part between `&` and `;`.
    Ref(&'a str),
    /// `<![CDATA[content]]>`.
    CData(&'a str),
    /// `<!DOCTYPE` (or any case of it): refused by every caller, so not read to its end.
    DocType,
    /// A comment, a processing instruction or the XML declaration.
    Skipped,
    /// The end of the document.
    Eof,
}

/// Why the markup is not well formed (quick-xml's wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanError(pub(crate) String);

impl ScanError {
    fn unknown_markup() -> Self {
        Self("syntax error: unknown or missed symbol in markup".into())
    }

    fn unclosed(what: &str, end: &str) -> Self {
        Self(format!(
            "syntax error: {what} not closed: `{end}` not found before end of input"
        ))
    }
}

/// The cursor: where the next token starts, and the open elements' names (as places in the
/// document, so that a copy of the scanner costs a few words per open element).
#[derive(Debug, Clone)]
pub(crate) struct Scanner<'a> {
    doc: &'a str,
    at: usize,
    /// (start, length) of each open element's name.
    open: Vec<(usize, usize)>,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `doc` (after a UTF-8 byte-order mark, if any).
    pub(crate) fn new(doc: &'a str) -> Self {
        Self {
            doc,
            at: if doc.starts_with('\u{feff}') { 3 } else { 0 },
            open: Vec::new(),
        }
    }

    /// The next token.
    pub(crate) fn next_token(&mut self) -> Result<Token<'a>, ScanError> {
        let rest = &self.doc.as_bytes()[self.at..];
        match memchr::memchr2(b'<', b'&', rest) {
            Some(0) if rest[0] == b'<' => self.markup(),
            Some(0) => self.reference(),
            Some(i) => {
                let text = &self.doc[self.at..self.at + i];
                self.at += i;
                Ok(Token::Text(text))
            }
            None if rest.is_empty() => Ok(Token::Eof),
            None => {
                let text = &self.doc[self.at..];
                self.at = self.doc.len();
                Ok(Token::Text(text))
            }
        }
    }

    /// Inside an element just started: when all that is left of it is text without markup or
    /// references and its end tag (a WS-Man property, nearly always), that text, with the end
    /// tag read too. `None` otherwise, and nothing is read: [`Self::next_token`] goes on as if
    /// this had not been asked.
    pub(crate) fn leaf(&mut self) -> Option<&'a str> {
        let rest = &self.doc.as_bytes()[self.at..];
        let i = memchr::memchr2(b'<', b'&', rest)?;
        let end_tag = self.exact_end_tag(&rest[i..])?;
        let text = &self.doc[self.at..self.at + i];
        self.open.pop();
        self.at += i + end_tag;
        Some(text)
    }

    /// The length of `</name>` when `markup` starts with it, `name` the innermost open
    /// element's (how nearly every end tag is written; anything else, such as whitespace
    /// before the `>`, is read by the general rule).
    #[inline]
    fn exact_end_tag(&self, markup: &[u8]) -> Option<usize> {
        let &(start, len) = self.open.last()?;
        let exact = markup.starts_with(b"</")
            && markup.get(2 + len) == Some(&b'>')
            && markup[2..2 + len] == self.doc.as_bytes()[start..start + len];
        exact.then_some(len + 3)
    }

    /// At `&`: a reference up to `;`, which must come before any `&` or `<`.
    fn reference(&mut self) -> Result<Token<'a>, ScanError> {
        let rest = &self.doc.as_bytes()[self.at..];
        match memchr::memchr3(b';', b'&', b'<', &rest[1..]) {
            Some(i) if rest[i + 1] == b';' => {
                let name = &self.doc[self.at + 1..self.at + 1 + i];
                self.at += i + 2;
                Ok(Token::Ref(name))
            }
            _ => Err(ScanError("ill-formed document: unclosed reference".into())),
        }
    }

    /// At `<`: a tag, a comment, CDATA, a DOCTYPE or a processing instruction.
    fn markup(&mut self) -> Result<Token<'a>, ScanError> {
        let rest = &self.doc.as_bytes()[self.at..];
        match rest.get(1) {
            None => Err(ScanError::unclosed("tag", ">")),
            Some(b'!') => self.bang(rest),
            Some(b'?') => {
                // `<??>` at least.
                let end = PiParser(false)
                    .feed(rest)
                    .filter(|&end| end >= 3)
                    .ok_or_else(|| ScanError::unclosed("processing instruction", "?>"))?;
                self.at += end + 1;
                Ok(Token::Skipped)
            }
            Some(b'/') => {
                if let Some(end_tag) = self.exact_end_tag(rest) {
                    self.open.pop();
                    self.at += end_tag;
                    return Ok(Token::End);
                }
                let Some(end) = ElementParser::Outside.feed(rest) else {
                    return Err(ScanError::unclosed("tag", ">"));
                };
                let content = &self.doc[self.at + 2..self.at + end];
                let name = match content.bytes().rposition(|b| !is_whitespace(b)) {
                    Some(last) => &content[..=last],
                    None => content,
                };
                let Some((start, len)) = self.open.pop() else {
                    return Err(ScanError(format!(
                        "ill-formed document: close tag `</{name}>` does not match any open tag"
                    )));
                };
                let expected = &self.doc[start..start + len];
                if name != expected {
                    return Err(ScanError(format!(
                        "ill-formed document: expected `</{expected}>`, but `</{name}>` was found"
                    )));
                }
                self.at += end + 1;
                Ok(Token::End)
            }
            Some(_) => {
                // A tag found by the short loop is its name and nothing else.
                let (end, just_a_name) = match short_tag_end(rest) {
                    Some(end) => (end, true),
                    None => (
                        ElementParser::Outside
                            .feed(rest)
                            .ok_or_else(|| ScanError::unclosed("tag", ">"))?,
                        false,
                    ),
                };
                let start = self.at + 1;
                self.at += end + 1;
                // `<x/>`; `</>` cannot be here (the `/` branch) and `</` + `>` is an end tag.
                let empty = end >= 2 && rest[end - 1] == b'/';
                let content = &self.doc[start..start + end - 1 - usize::from(empty)];
                let name_len = if just_a_name {
                    content.len()
                } else {
                    name_len(content.as_bytes())
                };
                if empty {
                    Ok(Token::Empty { content, name_len })
                } else {
                    self.open.push((start, name_len));
                    Ok(Token::Start { content, name_len })
                }
            }
        }
    }

    /// At `<!`.
    fn bang(&mut self, rest: &[u8]) -> Result<Token<'a>, ScanError> {
        match rest.get(2) {
            Some(b'-') => {
                // The first `>` after at least `<!----` that `--` precedes.
                let end = memchr::memchr_iter(b'>', rest)
                    .find(|&i| i > 5 && rest[..i].ends_with(b"--"))
                    .ok_or_else(|| ScanError::unclosed("comment", "-->"))?;
                if !rest.starts_with(b"<!--") {
                    return Err(ScanError::unknown_markup());
                }
                self.at += end + 1;
                Ok(Token::Skipped)
            }
            Some(b'[') => {
                let end = memchr::memchr_iter(b'>', rest)
                    .find(|&i| rest[..i].ends_with(b"]]"))
                    .ok_or_else(|| ScanError::unclosed("CDATA", "]]>"))?;
                if !rest.starts_with(b"<![CDATA[") {
                    return Err(ScanError::unknown_markup());
                }
                let content = &self.doc[self.at + 9..self.at + end - 2];
                self.at += end + 1;
                Ok(Token::CData(content))
            }
            Some(b'D' | b'd') => Ok(Token::DocType),
            _ => Err(ScanError::unknown_markup()),
        }
    }
}

/// Where the `>` of a start tag is (`rest` begins with its `<`) when the tag is just a name
/// and `>` or `/>` (nearly every WS-Man tag): found by a short loop, with no quote before it
/// that quick-xml's quoted-region search would have to follow. `None`: search that way.
#[inline]
fn short_tag_end(rest: &[u8]) -> Option<usize> {
    let i = 1 + rest[1..]
        .iter()
        .position(|&b| matches!(b, b'>' | b'/' | b'"' | b'\'') || is_whitespace(b))?;
    match (rest[i], rest.get(i + 1)) {
        (b'>', _) => Some(i),
        (b'/', Some(b'>')) => Some(i + 1),
        _ => None,
    }
}

/// The scanner beside quick-xml's reader, for the tests and the fuzz target.
pub(crate) mod differential {
    use super::{Scanner, Token};
    use quick_xml::events::Event;

    /// Tokens as quick-xml's reader gives them up to the end (`true`) or its first error
    /// (`false`); a DOCTYPE counts as an error (every caller refuses it).
    pub(crate) fn with_quick_xml(doc: &str) -> (Vec<String>, bool) {
        let mut reader = quick_xml::Reader::from_str(doc);
        reader.config_mut().check_end_names = true;
        let mut out = Vec::new();
        loop {
            let token = match reader.read_event() {
                Err(_) => return (out, false),
                Ok(Event::Start(s)) => format!("start {:?} {}", &*s, s.name().into_inner().len()),
                Ok(Event::Empty(s)) => format!("empty {:?} {}", &*s, s.name().into_inner().len()),
                Ok(Event::End(_)) => "end".into(),
                Ok(Event::Text(t)) => format!("text {:?}", &*t),
                Ok(Event::GeneralRef(r)) => format!("ref {:?}", &*r),
                Ok(Event::CData(c)) => format!("cdata {:?}", &*c),
                Ok(Event::DocType(_)) => return (out, false),
                Ok(Event::Decl(_) | Event::PI(_) | Event::Comment(_)) => "skipped".into(),
                Ok(Event::Eof) => return (out, true),
            };
            out.push(token);
        }
    }

    pub(crate) fn with_scanner(doc: &str) -> (Vec<String>, bool) {
        let mut scanner = Scanner::new(doc);
        let mut out = Vec::new();
        loop {
            let token = match scanner.next_token() {
                Err(_) => return (out, false),
                Ok(Token::Start { content, name_len }) => format!("start {content:?} {name_len}"),
                Ok(Token::Empty { content, name_len }) => format!("empty {content:?} {name_len}"),
                Ok(Token::End) => "end".into(),
                Ok(Token::Text(t)) => format!("text {t:?}"),
                Ok(Token::Ref(r)) => format!("ref {r:?}"),
                Ok(Token::CData(c)) => format!("cdata {c:?}"),
                Ok(Token::DocType) => return (out, false),
                Ok(Token::Eof) => return (out, true),
                Ok(Token::Skipped) => "skipped".into(),
            };
            out.push(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::differential::{with_quick_xml, with_scanner};
    use super::*;
    use proptest::prelude::*;

    /// The scanner's tokens up to the end or the first error; with `leaves`, a leaf is read at
    /// each start tag (`Scanner::leaf`) and put down as the text and end tokens it stands for.
    fn tokens(doc: &str, leaves: bool) -> Vec<Token<'_>> {
        let mut scanner = Scanner::new(doc);
        let mut out = Vec::new();
        while let Ok(token) = scanner.next_token() {
            out.push(token);
            if token == Token::Eof {
                break;
            }
            if leaves
                && matches!(token, Token::Start { .. })
                && let Some(text) = scanner.leaf()
            {
                if !text.is_empty() {
                    out.push(Token::Text(text));
                }
                out.push(Token::End);
            }
        }
        out
    }

    /// Asking for a leaf's text anywhere changes nothing but how the tokens are grouped.
    #[test]
    fn a_leaf_is_its_text_and_end_token() {
        for doc in [
            "<a>x</a>",
            "<a></a>",
            "<a>x<b/></a>",
            "<a>x&amp;</a>",
            "<a>x</a >",
            "<a>x</b>",
            "<a>x</ab>",
            "<ab>x</a>",
            "<a><b>y</b>z</a>",
            "<a>x",
            "<a>&lt;x</a>",
        ] {
            assert_eq!(tokens(doc, true), tokens(doc, false), "{doc:?}");
        }
    }

    #[test]
    fn tokens_as_quick_xml_gives_them() {
        for doc in [
            "",
            "\u{feff}<a/>",
            "<a b='>' c=\">\">x</a >",
            "<a><b></a>",
            "</a>",
            "<",
            "<a",
            "<a/",
            "</>",
            "<//>",
            "<a></>",
            "x&amp;y&#x41;&",
            "&;",
            "a&b<c/>",
            "<!---->",
            "<!-->-->",
            "<!--->",
            "<!-- a -- b --->",
            "<!-x-->",
            "<![CDATA[]]>",
            "<![CDATA[a]]]>",
            "<![CDAT]]>",
            "<![CDATA[",
            "<!DOCTYPE x>",
            "<!x>",
            "<!",
            "<??>",
            "<?>",
            "<?x?>",
            "<?xml version='1.0'?><a/>",
            "<?x '?>' ?>",
            "<a:b  c:d=\"1\"\t/>",
            "<é>ü</é>",
            "<a>\r\n</a>",
        ] {
            assert_eq!(with_scanner(doc), with_quick_xml(doc), "{doc:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Documents built from the pieces the grammar turns on: the same tokens and the same
        /// verdict, however they are put together.
        #[test]
        fn any_document_tokenizes_as_with_quick_xml(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just("<"), Just(">"), Just("/"), Just("!"), Just("?"), Just("-"), Just("["),
                    Just("]"), Just("&"), Just(";"), Just("'"), Just("\""), Just(" "), Just("\t"),
                    Just("a"), Just("b:c"), Just("é"), Just("\r\n"), Just("<a>"), Just("</a>"),
                    Just("<b/>"), Just("<![CDATA["), Just("]]>"), Just("<!--"), Just("-->"),
                    Just("<?"), Just("?>"), Just("&amp;"), Just("<!D"), Just("="), Just("\u{feff}"),
                ],
                0..24,
            )
        ) {
            let doc = pieces.concat();
            prop_assert_eq!(with_scanner(&doc), with_quick_xml(&doc), "{:?}", doc);
        }
    }
}
