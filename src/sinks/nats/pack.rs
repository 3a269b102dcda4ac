//! Several events per NATS message (`events_per_message`): what makes the
//! broker's per-message cost (a publish, its acknowledgement, a delivery
//! to a worker and that worker's ack) a per-pack cost.
//!
//! A pack is a JSON array of the events' JSON objects, which the `nats`
//! source's default `json` codec already reads as one event per element:
//! workers need no option, and a worker of any version reads packs. Only
//! events of one subject share a message, in the order they came; a pack
//! closes at `events_per_message` events or when it would exceed its byte
//! budget (half the server's `max_payload`, so that a pack stays well
//! inside what the server accepts whatever the events' sizes).
//!
//! The unit of everything downstream of the broker becomes the message: a
//! worker acknowledges a pack when every event of it was delivered, so a
//! redelivery (a worker killed, a sink that gave up) repeats the whole
//! pack, and `max_ack_pending` bounds packs, not events.

use std::collections::HashMap;

use bytes::Bytes;

use super::sink::Outgoing;

/// How messages are packed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Packing {
    /// The most events in one message; 1 keeps the one-event-per-message
    /// wire format (a JSON object, not an array).
    pub(super) events: usize,
    /// The most payload bytes in one packed message (a single event larger
    /// than this still goes, alone).
    pub(super) bytes: usize,
}

impl Packing {
    /// Packs `singles` (one event each, in order) into messages. The id of
    /// a pack is its first and last events' ids, `first..last`: the same
    /// events packed the same way (a retry of this batch) keep the id.
    pub(super) fn pack(&self, singles: Vec<Outgoing>) -> Vec<Outgoing> {
        if self.events <= 1 || singles.len() <= 1 {
            return singles;
        }
        // One open pack per subject, in the order subjects first came.
        let mut open: Vec<Pack> = Vec::new();
        let mut by_subject: HashMap<String, usize> = HashMap::new();
        let mut done = Vec::new();
        for single in singles {
            let at = match by_subject.get(&single.subject) {
                Some(&at) => at,
                None => {
                    by_subject.insert(single.subject.clone(), open.len());
                    open.push(Pack::new(single.subject.clone()));
                    open.len() - 1
                }
            };
            let pack = &mut open[at];
            let full = pack.count == self.events
                || (pack.count > 0 && pack.payload.len() + single.payload.len() + 2 > self.bytes);
            if full {
                let subject = pack.subject.clone();
                done.push(std::mem::replace(pack, Pack::new(subject)).finish());
            }
            open[at].add(single);
        }
        done.extend(open.into_iter().map(Pack::finish));
        done
    }
}

/// A message being filled.
struct Pack {
    subject: String,
    payload: Vec<u8>,
    count: usize,
    first_id: Option<String>,
    last_id: Option<String>,
    events: Vec<crate::event::Event>,
}

impl Pack {
    fn new(subject: String) -> Self {
        Self {
            subject,
            payload: vec![b'['],
            count: 0,
            first_id: None,
            last_id: None,
            events: Vec::new(),
        }
    }

    fn add(&mut self, single: Outgoing) {
        if self.count > 0 {
            self.payload.push(b',');
        }
        self.payload.extend_from_slice(&single.payload);
        if self.count == 0 {
            self.first_id = single.id;
        } else {
            self.last_id = single.id;
        }
        self.count += 1;
        self.events.extend(single.events);
    }

    fn finish(mut self) -> Outgoing {
        self.payload.push(b']');
        let id = match (self.first_id, self.last_id) {
            (Some(first), Some(last)) => Some(format!("{first}..{last}")),
            (first, _) => first,
        };
        Outgoing {
            subject: self.subject,
            id,
            payload: Bytes::from(self.payload),
            events: self.events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn single(subject: &str, n: usize) -> Outgoing {
        Outgoing {
            subject: subject.to_string(),
            id: Some(format!("id{n}")),
            payload: Bytes::from(format!("{{\"n\":{n}}}")),
            events: vec![Event::from_value(vrl::value!({ "n": n }))],
        }
    }

    #[test]
    fn packs_by_subject_in_order_up_to_the_event_and_byte_limits() {
        let singles = vec![
            single("a", 0),
            single("b", 1),
            single("a", 2),
            single("a", 3),
            single("b", 4),
        ];
        let packed = Packing {
            events: 2,
            bytes: 1 << 20,
        }
        .pack(singles);
        let shown: Vec<(&str, &str, Option<&str>, usize)> = packed
            .iter()
            .map(|m| {
                (
                    m.subject.as_str(),
                    std::str::from_utf8(&m.payload).unwrap(),
                    m.id.as_deref(),
                    m.events.len(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                ("a", "[{\"n\":0},{\"n\":2}]", Some("id0..id2"), 2),
                ("a", "[{\"n\":3}]", Some("id3"), 1),
                ("b", "[{\"n\":1},{\"n\":4}]", Some("id1..id4"), 2),
            ]
        );
        // Each message is a JSON array the source's json codec splits.
        for message in &packed {
            let value: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
            assert_eq!(value.as_array().map(Vec::len), Some(message.events.len()));
        }
        let small = Packing {
            events: 100,
            bytes: 20,
        }
        .pack((0..4).map(|n| single("a", n)).collect());
        assert_eq!(
            small.iter().map(|m| m.events.len()).collect::<Vec<_>>(),
            vec![2, 2],
            "a pack closes before it outgrows its byte budget"
        );
    }

    #[test]
    fn one_event_per_message_keeps_the_object_format() {
        let packed = Packing {
            events: 1,
            bytes: 1 << 20,
        }
        .pack(vec![single("a", 0), single("a", 1)]);
        assert_eq!(packed.len(), 2);
        assert_eq!(&packed[0].payload[..], b"{\"n\":0}");
        assert_eq!(packed[0].id.as_deref(), Some("id0"));
    }
}
