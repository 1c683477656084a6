//! The telnet side of the bridge (RFC 854, 855, 857, 858), sans-IO: enough of the protocol to
//! make a terminal client behave like a serial console, and nothing that can eat user bytes.
//!
//! - We announce WILL ECHO and WILL SGA, and ask DO SGA: the client sends each key as typed and
//!   shows only what the console echoes (character mode).
//! - Anything else the client proposes is refused (DONT / WONT); refusals of ours are
//!   accepted silently, so negotiation cannot loop.
//! - Subnegotiations (IAC SB ... IAC SE) are skipped whole.
//! - IAC IAC is a data byte 0xFF in both directions.
//! - CR NUL and CR LF from the client become CR, which is what a serial console (a BIOS, a
//!   getty) takes as Enter; a CR followed by anything else, and a lone LF, pass unchanged.

/// IAC.
pub(crate) const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
/// Option ECHO.
pub(crate) const ECHO: u8 = 1;
/// Option SUPPRESS-GO-AHEAD.
pub(crate) const SGA: u8 = 3;

/// What the server says first: WILL ECHO, WILL SGA, DO SGA.
pub(crate) const GREETING: [u8; 9] = [IAC, WILL, ECHO, IAC, WILL, SGA, IAC, DO, SGA];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Data,
    /// After a CR in data: a following NUL or LF is swallowed.
    Cr,
    Iac,
    Option(u8),
    Sub,
    SubIac,
}

/// Decoder of the client's bytes.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    state: State,
}

impl Decoder {
    /// Decodes `input`: user data goes to `data`, negotiation answers to `replies`.
    /// Works on any split of the stream.
    pub(crate) fn decode(&mut self, input: &[u8], data: &mut Vec<u8>, replies: &mut Vec<u8>) {
        for &b in input {
            self.state = match (self.state, b) {
                (State::Data | State::Cr, IAC) => State::Iac,
                (State::Cr, 0 | b'\n') => State::Data,
                (State::Data | State::Cr, b'\r') => {
                    data.push(b'\r');
                    State::Cr
                }
                (State::Data | State::Cr, b) => {
                    data.push(b);
                    State::Data
                }
                (State::Iac, IAC) => {
                    data.push(IAC);
                    State::Data
                }
                (State::Iac, WILL | WONT | DO | DONT) => State::Option(b),
                (State::Iac, SB) => State::Sub,
                // NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, SE out of place: nothing to do.
                (State::Iac, _) => State::Data,
                (State::Option(cmd), option) => {
                    match (cmd, option) {
                        // What we offered or asked for: agreed.
                        (DO, ECHO | SGA) | (WILL, SGA) => {}
                        // Anything else proposed: refused.
                        (WILL, o) => replies.extend_from_slice(&[IAC, DONT, o]),
                        (DO, o) => replies.extend_from_slice(&[IAC, WONT, o]),
                        // Refusals (WONT, DONT) are accepted without an answer.
                        _ => {}
                    }
                    State::Data
                }
                (State::Sub, IAC) => State::SubIac,
                (State::Sub, _) => State::Sub,
                (State::SubIac, SE) => State::Data,
                (State::SubIac, _) => State::Sub,
            };
        }
    }
}

/// Appends `data` for the client, doubling every 0xFF.
pub(crate) fn escape(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.split_inclusive(|&b| b == IAC) {
        out.extend_from_slice(chunk);
        if chunk.last() == Some(&IAC) {
            out.push(IAC);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut data, mut replies) = (Vec::new(), Vec::new());
        Decoder::default().decode(input, &mut data, &mut replies);
        (data, replies)
    }

    #[test]
    fn negotiation_and_data() {
        // A typical client opening: DO ECHO, DO SGA, WILL TTYPE, WILL NAWS, then a
        // subnegotiation (NAWS 80x24) and a typed line.
        let (data, replies) = decode(&[
            IAC, DO, ECHO, IAC, DO, SGA, IAC, WILL, 24, IAC, WILL, 31, IAC, SB, 31, 0, 80, 0, 24,
            IAC, SE, b'l', b's', b'\r', 0,
        ]);
        assert_eq!(data, b"ls\r");
        assert_eq!(replies, [IAC, DONT, 24, IAC, DONT, 31]);
        assert_eq!(decode(&[IAC, DO, 99]).1, [IAC, WONT, 99]);
        assert_eq!(decode(&[IAC, WONT, ECHO, IAC, DONT, SGA]).1, []);
    }

    #[test]
    fn user_bytes_are_never_eaten() {
        assert_eq!(decode(b"a\r\nb").0, b"a\rb");
        assert_eq!(decode(b"a\rb").0, b"a\rb");
        assert_eq!(decode(b"a\nb").0, b"a\nb");
        assert_eq!(decode(b"\r\r\n").0, b"\r\r");
        assert_eq!(decode(&[IAC, IAC, 0, IAC, IAC]).0, [IAC, 0, IAC]);
        // IAC inside a subnegotiation, doubled, does not end it.
        assert_eq!(decode(&[IAC, SB, 24, IAC, IAC, 1, IAC, SE, b'x']).0, b"x");
    }

    #[test]
    fn escaping() {
        let mut out = Vec::new();
        escape(&[1, IAC, 2, IAC, IAC], &mut out);
        assert_eq!(out, [1, IAC, IAC, 2, IAC, IAC, IAC, IAC]);
    }

    proptest! {
        #[test]
        fn any_split_decodes_the_same(input in prop::collection::vec(any::<u8>(), 0..200), cut in any::<prop::sample::Index>()) {
            let whole = decode(&input);
            let at = cut.index(input.len() + 1);
            let mut decoder = Decoder::default();
            let (mut data, mut replies) = (Vec::new(), Vec::new());
            decoder.decode(&input[..at], &mut data, &mut replies);
            decoder.decode(&input[at..], &mut data, &mut replies);
            prop_assert_eq!((data, replies), whole);
        }

        #[test]
        fn escaped_data_decodes_back(data in prop::collection::vec(any::<u8>().prop_filter("no CR", |b| *b != b'\r'), 0..200)) {
            let mut wire = Vec::new();
            escape(&data, &mut wire);
            prop_assert_eq!(decode(&wire).0, data);
        }
    }
}
