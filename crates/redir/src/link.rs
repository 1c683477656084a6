//! What the client and device sessions share: the receive buffer, the output buffer, the
//! event queue, IDE-R numbering in both directions, and handing payloads out as events
//! without copying them. The roles keep only their state and what they do with a message.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::codec::{IderCommand, IderMessage, Message, SessionKind, split_frame};
use crate::{CloseReason, DecodeError, Event};

#[derive(Debug, Default)]
pub(crate) struct Link {
    inbuf: BytesMut,
    out: Vec<u8>,
    events: VecDeque<Event>,
    /// Sequence number of our next IDE-R message (each direction counts from 0).
    ider_tx: u32,
    /// Sequence number the peer's next IDE-R message must carry.
    ider_rx: u32,
}

impl Link {
    pub(crate) fn send(&mut self, message: Message<'_>) {
        message.encode(&mut self.out);
    }

    pub(crate) fn push_event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Sends an IDE-R message with the next sequence number.
    pub(crate) fn send_ider(&mut self, command: IderCommand, attributes: u8, body: &[u8]) {
        let seq = self.ider_tx;
        self.ider_tx = self.ider_tx.wrapping_add(1);
        self.send(Message::Ider(IderMessage {
            command,
            attributes,
            seq,
            body,
        }));
    }

    /// A gap in the peer's IDE-R numbering means lost data (MeshCommander aborts too).
    pub(crate) fn check_ider_seq(&mut self, seq: u32) -> Result<(), CloseReason> {
        if seq != self.ider_rx {
            return Err(CloseReason::IderSequence {
                expected: self.ider_rx,
                got: seq,
            });
        }
        self.ider_rx = self.ider_rx.wrapping_add(1);
        Ok(())
    }

    /// Bytes from the peer, before any handoff.
    pub(crate) fn receive(&mut self, bytes: &[u8]) {
        self.inbuf.extend_from_slice(bytes);
    }

    /// The next complete message, cut off the receive buffer.
    pub(crate) fn next_frame(
        &mut self,
        kind: Option<SessionKind>,
    ) -> Result<Option<Bytes>, DecodeError> {
        split_frame(&mut self.inbuf, kind)
    }

    /// RFB bytes after the handoff: handed out as they come, and whatever was already
    /// buffered (it came in the same read as 0x41) goes first.
    pub(crate) fn rfb(&mut self, bytes: &[u8]) {
        if !self.inbuf.is_empty() {
            let early = self.inbuf.split().freeze();
            self.events.push_back(Event::Rfb(early));
        }
        if !bytes.is_empty() {
            self.events
                .push_back(Event::Rfb(Bytes::copy_from_slice(bytes)));
        }
    }

    /// A SOL data message (0x28 or 0x2A, 10-byte header) as an event.
    pub(crate) fn deliver_sol(&mut self, mut frame: Bytes) {
        frame.advance(10);
        if !frame.is_empty() {
            self.events.push_back(Event::SolData(frame));
        }
    }

    /// An IDE-R message as an event.
    pub(crate) fn deliver_ider(&mut self, mut frame: Bytes) {
        let Some(command) = IderCommand::from_byte(frame[0]) else {
            return; // the decoder let only IDE-R commands through
        };
        let attributes = frame[3];
        let seq = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        frame.advance(8);
        self.events.push_back(Event::Ider {
            command,
            attributes,
            seq,
            body: frame,
        });
    }
}
