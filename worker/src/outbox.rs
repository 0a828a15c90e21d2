//! The updates of the worker's attempts that the server has not acknowledged yet: numbered
//! per attempt from 1, kept until acknowledged and sent again until then (after a dropped
//! connection, a restarted server, a lost answer). An attempt the server gave up on is
//! abandoned: its updates are dropped and later ones are never numbered.

use std::collections::{BTreeMap, BTreeSet};

use murmur_protocol::worker::{Acknowledged, AttemptUpdates, Numbered, Updates};
use murmur_protocol::{AttemptKey, AttemptUpdate};

#[derive(Default)]
pub struct Outbox {
    attempts: BTreeMap<AttemptKey, Stream>,
    abandoned: BTreeSet<AttemptKey>,
}

#[derive(Default)]
struct Stream {
    /// The number the next update gets.
    next: u64,
    unacknowledged: Vec<Numbered>,
    /// Its `Ended` was numbered: once that is acknowledged the stream is done.
    ended: bool,
}

impl Outbox {
    /// Numbers `update` as the next of its attempt; false when the attempt was abandoned.
    pub fn push(&mut self, key: &AttemptKey, update: AttemptUpdate) -> bool {
        if self.abandoned.contains(key) {
            return false;
        }
        let stream = self.attempts.entry(key.clone()).or_default();
        if stream.ended {
            return false;
        }
        stream.next += 1;
        stream.ended = matches!(update, AttemptUpdate::Ended { .. });
        stream.unacknowledged.push(Numbered {
            seq: stream.next,
            update,
        });
        true
    }

    /// Everything unacknowledged, oldest first per attempt; `None` when there is nothing.
    pub fn pending(&self) -> Option<Updates> {
        let attempts: Vec<AttemptUpdates> = self
            .attempts
            .iter()
            .filter(|(_, stream)| !stream.unacknowledged.is_empty())
            .map(|(key, stream)| AttemptUpdates {
                key: key.clone(),
                updates: stream.unacknowledged.clone(),
            })
            .collect();
        (!attempts.is_empty()).then_some(Updates { attempts })
    }

    /// Forgets what the server took; abandons what it will not take. Returns the attempts to
    /// stop (those the server no longer takes updates for).
    pub fn acknowledge(&mut self, answer: &Acknowledged) -> Vec<AttemptKey> {
        for ack in &answer.acks {
            if let Some(stream) = self.attempts.get_mut(&ack.key) {
                stream
                    .unacknowledged
                    .retain(|numbered| numbered.seq > ack.upto);
                if stream.ended && stream.unacknowledged.is_empty() {
                    self.attempts.remove(&ack.key);
                }
            }
        }
        for key in &answer.stop {
            self.abandon(key);
        }
        answer.stop.clone()
    }

    /// The server gave the attempt up (its machine was lost meanwhile, or it was never this
    /// server's): nothing more of it is sent.
    pub fn abandon(&mut self, key: &AttemptKey) {
        self.attempts.remove(key);
        self.abandoned.insert(key.clone());
    }

    /// Whether updates of `key` are still waiting for their acknowledgement.
    #[cfg(test)]
    pub fn holds(&self, key: &AttemptKey) -> bool {
        self.attempts.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use murmur_protocol::worker::Ack;
    use murmur_protocol::{AttemptFailure, FailureKind, Stream as Output};

    use super::*;

    fn key(slug: &str) -> AttemptKey {
        AttemptKey {
            run_id: "r".to_owned(),
            slug: slug.to_owned(),
            attempt: 1,
        }
    }

    fn line(text: &str) -> AttemptUpdate {
        AttemptUpdate::Line {
            stream: Output::Stdout,
            text: text.to_owned(),
        }
    }

    fn ended() -> AttemptUpdate {
        AttemptUpdate::Ended {
            outcome: Err(AttemptFailure::new(FailureKind::Failed, "exit 1")),
        }
    }

    fn seqs(outbox: &Outbox, slug: &str) -> Vec<u64> {
        let pending = outbox.pending().map(|p| p.attempts).unwrap_or_default();
        pending
            .into_iter()
            .filter(|a| a.key == key(slug))
            .flat_map(|a| a.updates.into_iter().map(|n| n.seq))
            .collect()
    }

    fn ack(slug: &str, upto: u64) -> Acknowledged {
        Acknowledged {
            acks: vec![Ack {
                key: key(slug),
                upto,
            }],
            stop: Vec::new(),
        }
    }

    #[test]
    fn updates_are_numbered_per_attempt_and_sent_until_acknowledged() {
        let mut outbox = Outbox::default();
        assert!(outbox.pending().is_none());
        outbox.push(&key("a"), line("1"));
        outbox.push(&key("b"), line("1"));
        outbox.push(&key("a"), line("2"));
        assert_eq!(seqs(&outbox, "a"), [1, 2]);
        assert_eq!(seqs(&outbox, "b"), [1]);
        // Unanswered: the same again.
        assert_eq!(seqs(&outbox, "a"), [1, 2]);
        outbox.acknowledge(&ack("a", 1));
        outbox.push(&key("a"), line("3"));
        assert_eq!(seqs(&outbox, "a"), [2, 3]);
        assert_eq!(seqs(&outbox, "b"), [1]);
    }

    #[test]
    fn an_acknowledged_end_closes_the_attempt_and_nothing_follows_it() {
        let mut outbox = Outbox::default();
        outbox.push(&key("a"), line("1"));
        outbox.push(&key("a"), ended());
        assert!(!outbox.push(&key("a"), line("late")));
        assert_eq!(seqs(&outbox, "a"), [1, 2]);
        outbox.acknowledge(&ack("a", 1));
        assert!(outbox.holds(&key("a")), "its end is not acknowledged yet");
        outbox.acknowledge(&ack("a", 2));
        assert!(!outbox.holds(&key("a")));
        assert!(outbox.pending().is_none());
    }

    #[test]
    fn an_attempt_the_server_gave_up_is_dropped_and_stays_dropped() {
        let mut outbox = Outbox::default();
        outbox.push(&key("a"), line("1"));
        outbox.push(&key("b"), line("1"));
        let answer = Acknowledged {
            acks: Vec::new(),
            stop: vec![key("a")],
        };
        assert_eq!(outbox.acknowledge(&answer), [key("a")]);
        assert!(!outbox.push(&key("a"), line("2")));
        assert!(seqs(&outbox, "a").is_empty());
        assert_eq!(seqs(&outbox, "b"), [1]);
    }

    #[test]
    fn a_stale_acknowledgement_forgets_nothing_newer() {
        let mut outbox = Outbox::default();
        for text in ["1", "2", "3"] {
            outbox.push(&key("a"), line(text));
        }
        outbox.acknowledge(&ack("a", 2));
        outbox.acknowledge(&ack("a", 1));
        assert_eq!(seqs(&outbox, "a"), [3]);
    }
}
