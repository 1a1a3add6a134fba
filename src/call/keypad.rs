//! The number a caller keys in for its callback.
//!
//! After pressing 1 for a callback, the caller hears "press # to be called back on this
//! number, or key in another one followed by #". [`NumberEntry`] collects the keys: `#`
//! alone keeps the caller's own number, digits then `#` give another one, `*` gives up
//! the callback and returns to the queue.

/// The fewest digits a keyed-in callback number may have.
pub(crate) const MIN_DIGITS: usize = 3;
/// The most digits a keyed-in callback number may have (ITU-T E.164 §6: 15 digits, plus
/// room for a trunk prefix).
pub(crate) const MAX_DIGITS: usize = 20;

/// What a key did to the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// More keys are expected.
    More,
    /// The caller confirmed: call back on this number; `None` means the caller's own.
    Done(Option<String>),
    /// The number is not valid (too short or too long); the entry starts again.
    Invalid,
    /// The caller gave up the callback.
    Cancelled,
}

/// The digits keyed in so far.
#[derive(Debug, Default)]
pub(crate) struct NumberEntry {
    digits: String,
}

impl NumberEntry {
    /// Whether any digit has been keyed in.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.digits.is_empty()
    }

    /// Takes one key.
    pub(crate) fn key(&mut self, key: char) -> Entry {
        match key {
            '0'..='9' if self.digits.len() < MAX_DIGITS => {
                self.digits.push(key);
                Entry::More
            }
            '0'..='9' => {
                self.digits.clear();
                Entry::Invalid
            }
            '#' if self.digits.is_empty() => Entry::Done(None),
            '#' if self.digits.len() < MIN_DIGITS => {
                self.digits.clear();
                Entry::Invalid
            }
            '#' => Entry::Done(Some(std::mem::take(&mut self.digits))),
            '*' => {
                self.digits.clear();
                Entry::Cancelled
            }
            // A, B, C, D: not part of a number.
            _ => {
                self.digits.clear();
                Entry::Invalid
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(entry: &mut NumberEntry, keys: &str) -> Vec<Entry> {
        keys.chars().map(|key| entry.key(key)).collect()
    }

    #[test]
    fn hash_alone_keeps_the_callers_own_number() {
        let mut entry = NumberEntry::default();
        assert_eq!(entry.key('#'), Entry::Done(None));
    }

    #[test]
    fn digits_then_hash_give_another_number() {
        let mut entry = NumberEntry::default();
        let got = keys(&mut entry, "0521999#");
        assert!(got[..7].iter().all(|entry| *entry == Entry::More));
        assert_eq!(got[7], Entry::Done(Some("0521999".to_owned())));
        assert!(entry.is_empty(), "the entry is spent");
    }

    #[test]
    fn a_short_or_long_number_is_refused_and_the_entry_starts_again() {
        let mut entry = NumberEntry::default();
        assert_eq!(keys(&mut entry, "12#").pop(), Some(Entry::Invalid));
        assert!(entry.is_empty());
        let long = "1".repeat(MAX_DIGITS + 1);
        assert_eq!(keys(&mut entry, &long).pop(), Some(Entry::Invalid));
        assert_eq!(
            keys(&mut entry, "333#").pop(),
            Some(Entry::Done(Some("333".to_owned())))
        );
    }

    #[test]
    fn star_gives_up_and_letters_are_not_digits() {
        let mut entry = NumberEntry::default();
        assert_eq!(keys(&mut entry, "05*").pop(), Some(Entry::Cancelled));
        assert!(entry.is_empty());
        assert_eq!(keys(&mut entry, "05A").pop(), Some(Entry::Invalid));
        assert!(entry.is_empty());
    }
}
