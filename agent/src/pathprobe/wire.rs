//! The path-probe datagram format, kept apart from the state machines so the one place that
//! touches untrusted bytes is small and every length is checked here.
//!
//! Every datagram starts with [`MAGIC`] and a kind byte, then fixed-size fields in little
//! endian, then Noise bytes. A WireGuard message starts with a little-endian `u32` type 1..=4,
//! so its first byte is 1..=4 followed by three zero bytes; `J` (0x4a) can never be that, and
//! the node's demultiplexer tells the two apart with [`is_path_probe`].
//!
//! | kind | fields after magic + kind | Noise part |
//! | --- | --- | --- |
//! | 1 init | pair hint \[8\] | KK message 1: `e, es, ss`, payload: initiator's id u32 |
//! | 2 response | receiver id u32 | KK message 2: `e, ee, se`, payload: receiver id, responder's id |
//! | 3 probe | receiver id u32, nonce u64 | AEAD under the nonce: kind, receiver id |
//! | 4 reply | receiver id u32, nonce u64 | AEAD under the nonce: kind, receiver id |
//!
//! Header fields are only lookup keys (hint, receiver id) or the AEAD nonce, and the receiver
//! id is repeated inside the authenticated part; ids a node needs to remember travel only
//! inside it. So a changed byte anywhere makes the datagram unknown or unauthentic, never
//! misread. Init and response are both 65 bytes, probe and reply both 38: a node never
//! answers with more bytes than it received.

use super::Rejection;

/// The first four bytes of every path-probe datagram.
pub const MAGIC: [u8; 4] = *b"JPP1";

/// Bytes of a public key or ephemeral key (X25519).
pub(super) const KEY_LEN: usize = 32;
/// Bytes of a ChaCha20-Poly1305 tag.
const TAG_LEN: usize = 16;
/// Bytes of the pair hint in an init.
pub(super) const HINT_LEN: usize = 8;

/// Plaintext carried in KK message 1: the initiator's id.
pub(super) const INIT_PAYLOAD_LEN: usize = 4;
/// Plaintext carried in KK message 2: the initiator's id, then the responder's id.
pub(super) const RESPONSE_PAYLOAD_LEN: usize = 8;
/// Plaintext of a probe or reply: the kind, then the receiver id.
pub(super) const SEALED_PAYLOAD_LEN: usize = 5;

const HEADER: usize = MAGIC.len() + 1;
/// Noise bytes in an init: `e`, then the encrypted payload.
pub(super) const INIT_NOISE_LEN: usize = KEY_LEN + INIT_PAYLOAD_LEN + TAG_LEN;
/// Noise bytes in a response: `e`, then the encrypted payload.
pub(super) const RESPONSE_NOISE_LEN: usize = KEY_LEN + RESPONSE_PAYLOAD_LEN + TAG_LEN;
/// Sealed bytes in a probe or reply.
pub(super) const SEALED_LEN: usize = SEALED_PAYLOAD_LEN + TAG_LEN;

const INIT_LEN: usize = HEADER + HINT_LEN + INIT_NOISE_LEN;
const RESPONSE_LEN: usize = HEADER + 4 + RESPONSE_NOISE_LEN;
const SEALED_DATAGRAM_LEN: usize = HEADER + 4 + 8 + SEALED_LEN;

/// The kind byte after the magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    Init = 1,
    Response = 2,
    Probe = 3,
    Reply = 4,
}

/// A parsed datagram; the slices borrow the Noise or sealed bytes, still unauthenticated.
#[derive(Debug)]
pub(super) enum Message<'a> {
    Init {
        hint: [u8; HINT_LEN],
        noise: &'a [u8],
    },
    Response {
        receiver: u32,
        noise: &'a [u8],
    },
    Probe {
        receiver: u32,
        nonce: u64,
        sealed: &'a [u8],
    },
    Reply {
        receiver: u32,
        nonce: u64,
        sealed: &'a [u8],
    },
}

/// Whether `datagram` is a path probe (starts with [`MAGIC`]) rather than WireGuard.
///
/// The node's UDP demultiplexer calls this on every datagram before handing it to WireGuard.
pub fn is_path_probe(datagram: &[u8]) -> bool {
    datagram.starts_with(&MAGIC)
}

/// Splits a datagram into its fields; only framing is checked here, never authenticity.
pub(super) fn parse(datagram: &[u8]) -> Result<Message<'_>, Rejection> {
    let Some(rest) = datagram.strip_prefix(&MAGIC) else {
        return Err(Rejection::BadMagic);
    };
    let Some((&kind, body)) = rest.split_first() else {
        return Err(Rejection::Malformed);
    };
    let mut reader = Reader(body);
    let message = match (kind, datagram.len()) {
        (1, INIT_LEN) => Message::Init {
            hint: reader.array()?,
            noise: reader.rest(),
        },
        (2, RESPONSE_LEN) => Message::Response {
            receiver: reader.u32()?,
            noise: reader.rest(),
        },
        (3, SEALED_DATAGRAM_LEN) => Message::Probe {
            receiver: reader.u32()?,
            nonce: reader.u64()?,
            sealed: reader.rest(),
        },
        (4, SEALED_DATAGRAM_LEN) => Message::Reply {
            receiver: reader.u32()?,
            nonce: reader.u64()?,
            sealed: reader.rest(),
        },
        _ => return Err(Rejection::Malformed),
    };
    Ok(message)
}

/// Frames an init around KK message 1.
pub(super) fn init(hint: [u8; HINT_LEN], noise: &[u8]) -> Vec<u8> {
    let mut out = header(Kind::Init, INIT_LEN);
    out.extend_from_slice(&hint);
    out.extend_from_slice(noise);
    out
}

/// Frames a response around KK message 2.
pub(super) fn response(receiver: u32, noise: &[u8]) -> Vec<u8> {
    let mut out = header(Kind::Response, RESPONSE_LEN);
    out.extend_from_slice(&receiver.to_le_bytes());
    out.extend_from_slice(noise);
    out
}

/// Frames a probe or a reply around its sealed bytes.
pub(super) fn sealed(kind: Kind, receiver: u32, nonce: u64, sealed: &[u8]) -> Vec<u8> {
    let mut out = header(kind, SEALED_DATAGRAM_LEN);
    out.extend_from_slice(&receiver.to_le_bytes());
    out.extend_from_slice(&nonce.to_le_bytes());
    out.extend_from_slice(sealed);
    out
}

/// The plaintext sealed in a probe or reply: it repeats the header's kind and receiver id.
pub(super) fn sealed_payload(kind: Kind, receiver: u32) -> [u8; SEALED_PAYLOAD_LEN] {
    let mut payload = [0; SEALED_PAYLOAD_LEN];
    payload[0] = kind as u8;
    payload[1..].copy_from_slice(&receiver.to_le_bytes());
    payload
}

fn header(kind: Kind, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&MAGIC);
    out.push(kind as u8);
    out
}

/// A cursor over a body whose total length was already checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Rejection> {
        let (head, tail) = self.0.split_at_checked(N).ok_or(Rejection::Malformed)?;
        self.0 = tail;
        head.try_into().map_err(|_| Rejection::Malformed)
    }

    fn u32(&mut self) -> Result<u32, Rejection> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, Rejection> {
        self.array().map(u64::from_le_bytes)
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inits_and_responses_are_the_same_size_as_are_probes_and_replies() {
        assert_eq!(INIT_LEN, 65);
        assert_eq!(RESPONSE_LEN, INIT_LEN);
        assert_eq!(SEALED_DATAGRAM_LEN, 38);
    }

    #[test]
    fn framing_round_trips() {
        let noise = [9; INIT_NOISE_LEN];
        let datagram = init([1; HINT_LEN], &noise);
        assert!(is_path_probe(&datagram));
        match parse(&datagram) {
            Ok(Message::Init { hint, noise: n }) => {
                assert_eq!(hint, [1; HINT_LEN]);
                assert_eq!(n, &noise[..]);
            }
            other => panic!("{other:?}"),
        }
        let datagram = sealed(Kind::Reply, 3, 42, &[0; SEALED_LEN]);
        assert!(matches!(
            parse(&datagram),
            Ok(Message::Reply {
                receiver: 3,
                nonce: 42,
                ..
            })
        ));
    }

    #[test]
    fn wrong_lengths_kinds_and_magic_are_refused() {
        let datagram = sealed(Kind::Probe, 3, 42, &[0; SEALED_LEN]);
        for cut in 0..datagram.len() {
            assert!(parse(&datagram[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = datagram.clone();
        long.push(0);
        assert_eq!(parse(&long).err(), Some(Rejection::Malformed));
        let mut kind = datagram.clone();
        kind[4] = 9;
        assert_eq!(parse(&kind).err(), Some(Rejection::Malformed));
        let mut magic = datagram;
        magic[0] = 1;
        assert_eq!(parse(&magic).err(), Some(Rejection::BadMagic));
        assert!(!is_path_probe(&[1, 0, 0, 0, 0, 0]));
        assert!(!is_path_probe(b"JPP"));
    }
}
