//! Where the core writes what it asks its runtime to do, without a copy or an allocation
//! per packet.
//!
//! The datapath's cost is the AEAD; everything else must stay out of its way. So the core
//! does not hand back one `Vec<u8>` per datagram (an allocation, a free and a copy each):
//! boringtun encrypts straight into the caller's [`Outputs`] and decrypts straight into it,
//! and a packet that is delivered is committed where it was decrypted. Datagrams to the same
//! destination lie back to back, so the runtime sends a run of them as one UDP GSO batch
//! straight from this memory ([`Outputs::runs`]). This is quinn-proto's `poll_transmit`
//! idea: the caller owns the buffer, the core fills it.
//!
//! An [`Outputs`] is reused: [`Outputs::clear`] forgets the items and keeps the memory.

use std::net::SocketAddr;
use std::ops::Range;

use topology::Plane;

use super::Event;

/// What the core asks its runtime to do; `B` is the bytes: borrowed from an [`Outputs`]
/// (`&[u8]`) or owned (`Vec<u8>`, see [`Outputs::take`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<B> {
    /// Send a datagram on the underlay, from one of the plane's local addresses.
    Transmit {
        /// The plane instance.
        plane: Plane,
        /// The local address (socket) to send from.
        from: SocketAddr,
        /// Where to.
        to: SocketAddr,
        /// The bytes.
        datagram: B,
    },
    /// Deliver an overlay packet to this node's interface on the plane (TUN or in-memory).
    Deliver {
        /// The plane instance.
        plane: Plane,
        /// The IP packet.
        packet: B,
    },
    /// Something an operator wants to know happened.
    Event(Event),
}

impl<B> Output<B> {
    fn map<C>(self, f: impl FnOnce(B) -> C) -> Output<C> {
        match self {
            Output::Transmit {
                plane,
                from,
                to,
                datagram,
            } => Output::Transmit {
                plane,
                from,
                to,
                datagram: f(datagram),
            },
            Output::Deliver { plane, packet } => Output::Deliver {
                plane,
                packet: f(packet),
            },
            Output::Event(event) => Output::Event(event),
        }
    }
}

/// A run of datagrams for one destination, back to back in memory: every one
/// `segment` bytes long except perhaps the last (what UDP GSO sends in one call).
#[derive(Debug)]
pub struct Run<'a> {
    /// The plane instance.
    pub plane: Plane,
    /// The local address to send from.
    pub from: SocketAddr,
    /// Where to.
    pub to: SocketAddr,
    /// The datagrams, concatenated.
    pub datagrams: &'a [u8],
    /// The length of each but the last.
    pub segment: usize,
}

/// The runtime-owned buffer the core writes its outputs into.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Never shrinks; `used` bytes of it belong to items, the rest is room to write into.
    bytes: Vec<u8>,
    used: usize,
    items: Vec<Output<Range<usize>>>,
}

impl Outputs {
    /// An empty buffer; it grows to what the traffic needs and keeps that memory.
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// How many outputs are waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Forgets every output, keeping the memory.
    pub fn clear(&mut self) {
        self.items.clear();
        self.used = 0;
    }

    /// The outputs, in the order the core produced them.
    pub fn iter(&self) -> impl Iterator<Item = Output<&[u8]>> {
        self.items
            .iter()
            .map(|item| item.clone().map(|range| &self.bytes[range]))
    }

    /// The outputs as owned values, leaving this buffer empty (for simulations that queue
    /// them; the runtime uses [`Outputs::iter`] or [`Outputs::runs`]).
    pub fn take(&mut self) -> Vec<Output<Vec<u8>>> {
        let owned = self.iter().map(|o| o.map(<[u8]>::to_vec)).collect();
        self.clear();
        owned
    }

    /// The outputs with consecutive datagrams to one destination joined into runs of equal
    /// segments (the last may be shorter), at most `most(segment)` segments each.
    pub fn runs(
        &self,
        mut most: impl FnMut(SocketAddr, usize) -> usize,
    ) -> impl Iterator<Item = Result<Run<'_>, Output<&[u8]>>> {
        let mut items = self.items.iter().peekable();
        std::iter::from_fn(move || {
            let item = items.next()?;
            let Output::Transmit {
                plane,
                from,
                to,
                datagram,
            } = item
            else {
                return Some(Err(item.clone().map(|r| &self.bytes[r])));
            };
            let segment = datagram.len();
            let limit = most(*from, segment).max(1);
            let (mut end, mut count) = (datagram.end, 1);
            while count < limit {
                let joins = |next: &&Output<Range<usize>>| match next {
                    Output::Transmit {
                        plane: p,
                        from: f,
                        to: t,
                        datagram,
                    } => {
                        p == plane
                            && f == from
                            && t == to
                            && datagram.start == end
                            && (1..=segment).contains(&datagram.len())
                    }
                    _ => false,
                };
                let Some(Output::Transmit { datagram: next, .. }) = items.next_if(joins) else {
                    break;
                };
                (end, count) = (next.end, count + 1);
                if next.len() < segment {
                    break; // only the last segment may be shorter
                }
            }
            Some(Ok(Run {
                plane: *plane,
                from: *from,
                to: *to,
                datagrams: &self.bytes[datagram.start..end],
                segment,
            }))
        })
    }

    /// Room for at least `len` bytes after the committed ones, to write an output into.
    pub(super) fn spare(&mut self, len: usize) -> &mut [u8] {
        let need = self.used + len;
        if self.bytes.len() < need {
            self.bytes.resize(need, 0);
        }
        &mut self.bytes[self.used..]
    }

    /// The committed bytes and the spare room after them, to encrypt a packet that was
    /// decrypted into the spare room (the first `len` spare bytes) further along.
    pub(super) fn spare_split(&mut self, len: usize, room: usize) -> (&[u8], &mut [u8]) {
        self.spare(len + room);
        let (packet, rest) = self.bytes[self.used..].split_at_mut(len);
        (packet, rest)
    }

    /// The first `len` spare bytes (a packet decrypted there).
    pub(super) fn decrypted(&self, len: usize) -> &[u8] {
        &self.bytes[self.used..self.used + len]
    }

    /// Moves `len` bytes written at `offset` into the spare room to its start (a forwarded
    /// packet's ciphertext over its plaintext).
    pub(super) fn shift(&mut self, offset: usize, len: usize) {
        let start = self.used + offset;
        self.bytes.copy_within(start..start + len, self.used);
    }

    /// Makes the first `len` spare bytes a datagram to send.
    pub(super) fn commit_transmit(
        &mut self,
        plane: Plane,
        from: SocketAddr,
        to: SocketAddr,
        len: usize,
    ) {
        let datagram = self.claim(len);
        self.items.push(Output::Transmit {
            plane,
            from,
            to,
            datagram,
        });
    }

    /// Makes the first `len` spare bytes a packet to deliver.
    pub(super) fn commit_deliver(&mut self, plane: Plane, len: usize) {
        let packet = self.claim(len);
        self.items.push(Output::Deliver { plane, packet });
    }

    /// Copies a datagram in and queues it (for the few that boringtun or the path prober
    /// wrote elsewhere: cookies, path probes).
    pub(super) fn transmit(
        &mut self,
        plane: Plane,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
    ) {
        self.spare(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.commit_transmit(plane, from, to, bytes.len());
    }

    /// Queues an event.
    pub(super) fn event(&mut self, event: Event) {
        self.items.push(Output::Event(event));
    }

    fn claim(&mut self, len: usize) -> Range<usize> {
        let range = self.used..self.used + len;
        self.used = range.end;
        range
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn outputs(datagrams: &[(u16, usize)]) -> Outputs {
        let mut out = Outputs::new();
        for (i, &(port, len)) in datagrams.iter().enumerate() {
            out.transmit(Plane::Business, addr(1), addr(port), &vec![i as u8; len]);
        }
        out
    }

    fn run_shapes(out: &Outputs, most: usize) -> Vec<(u16, usize, usize)> {
        out.runs(|_, _| most)
            .map(|run| {
                let run = run.unwrap();
                (run.to.port(), run.datagrams.len(), run.segment)
            })
            .collect()
    }

    #[test]
    fn equal_datagrams_to_one_destination_form_one_run_and_a_shorter_one_ends_it() {
        let out = outputs(&[(2, 100), (2, 100), (2, 60), (2, 100)]);
        assert_eq!(run_shapes(&out, 64), [(2, 260, 100), (2, 100, 100)]);
    }

    #[test]
    fn a_run_breaks_at_another_destination_a_longer_datagram_and_the_segment_limit() {
        let out = outputs(&[(2, 100), (3, 100), (3, 200), (3, 200), (3, 200)]);
        assert_eq!(
            run_shapes(&out, 2),
            [(2, 100, 100), (3, 100, 100), (3, 400, 200), (3, 200, 200)]
        );
    }

    #[test]
    fn runs_hold_the_bytes_in_order_and_other_outputs_pass_through() {
        let mut out = outputs(&[(2, 3), (2, 3)]);
        out.spare(2)[..2].copy_from_slice(b"ip");
        out.commit_deliver(Plane::Public, 2);
        out.transmit(Plane::Business, addr(1), addr(2), b"zz");
        let runs: Vec<_> = out.runs(|_, _| 8).collect();
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[0].as_ref().unwrap().datagrams, [0, 0, 0, 1, 1, 1]);
        assert!(matches!(
            runs[1],
            Err(Output::Deliver {
                plane: Plane::Public,
                packet: b"ip"
            })
        ));
        // Not contiguous with the first run: a delivered packet lies between them.
        assert_eq!(runs[2].as_ref().unwrap().datagrams, b"zz");
    }

    #[test]
    fn clear_keeps_the_memory_and_take_empties() {
        let mut out = outputs(&[(2, 1000)]);
        let owned = out.take();
        assert!(out.is_empty());
        assert_eq!(
            owned,
            [Output::Transmit {
                plane: Plane::Business,
                from: addr(1),
                to: addr(2),
                datagram: vec![0; 1000]
            }]
        );
        let capacity = out.bytes.len();
        out.transmit(Plane::Business, addr(1), addr(2), &[9; 500]);
        assert_eq!(out.bytes.len(), capacity);
        assert_eq!(out.iter().count(), 1);
    }
}
