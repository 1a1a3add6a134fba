//! A fixed-size set of small integers (agent indices), for O(1) eligibility checks.

/// A set of indices below a capacity fixed at creation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    pub(crate) fn with_capacity(bits: usize) -> Self {
        Bitset {
            words: vec![0; bits.div_ceil(64)],
        }
    }

    pub(crate) fn insert(&mut self, index: usize) {
        self.words[index / 64] |= 1 << (index % 64);
    }

    #[inline]
    pub(crate) fn contains(&self, index: usize) -> bool {
        self.words
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    pub(crate) fn union_with(&mut self, other: &Bitset) {
        for (word, other) in self.words.iter_mut().zip(&other.words) {
            *word |= other;
        }
    }

    /// Members in ascending order, starting at `start` and wrapping around to the lowest.
    pub(crate) fn iter_from(&self, start: usize) -> impl Iterator<Item = usize> + '_ {
        self.iter()
            .skip_while(move |&i| i < start)
            .chain(self.iter().take_while(move |&i| i < start))
    }

    /// Members in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    w * 64 + bit
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_union_and_wrapping_iteration() {
        let mut a = Bitset::with_capacity(200);
        for i in [0, 63, 64, 130, 199] {
            a.insert(i);
        }
        assert!(a.contains(63) && a.contains(199) && !a.contains(1) && !a.contains(500));
        assert_eq!(a.iter().collect::<Vec<_>>(), [0, 63, 64, 130, 199]);
        assert_eq!(a.iter_from(64).collect::<Vec<_>>(), [64, 130, 199, 0, 63]);
        assert_eq!(a.iter_from(65).collect::<Vec<_>>(), [130, 199, 0, 63, 64]);
        let mut b = Bitset::with_capacity(200);
        b.insert(5);
        b.union_with(&a);
        assert_eq!(b.iter().collect::<Vec<_>>(), [0, 5, 63, 64, 130, 199]);
    }
}
