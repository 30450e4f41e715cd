//! A digit trie: values stored under digit-string prefixes, found by walking a number.

/// Maps digit prefixes to values. Looking a number up visits at most 15 nodes, whatever the
/// number of prefixes stored.
#[derive(Debug, Clone)]
pub(crate) struct DigitTrie<T> {
    nodes: Vec<Node<T>>,
}

#[derive(Debug, Clone)]
struct Node<T> {
    children: [u32; 10],
    value: Option<T>,
}

const NONE: u32 = u32::MAX;

impl<T> Default for DigitTrie<T> {
    fn default() -> Self {
        DigitTrie { nodes: vec![Node { children: [NONE; 10], value: None }] }
    }
}

impl<T> DigitTrie<T> {
    /// The value stored at exactly `prefix`, created with `make` if absent. `prefix` must be
    /// ASCII digits.
    pub(crate) fn entry(&mut self, prefix: &[u8], make: impl FnOnce() -> T) -> &mut T {
        let mut at = 0usize;
        for &b in prefix {
            let d = usize::from(b - b'0');
            let next = self.nodes[at].children[d];
            at = if next == NONE {
                let id = self.nodes.len();
                self.nodes.push(Node { children: [NONE; 10], value: None });
                self.nodes[at].children[d] = id as u32;
                id
            } else {
                next as usize
            };
        }
        self.nodes[at].value.get_or_insert_with(make)
    }

    /// Calls `visit` with (prefix length, value) for every stored prefix of `digits`, shortest
    /// first.
    pub(crate) fn for_each_prefix_of<'a>(&'a self, digits: &[u8], mut visit: impl FnMut(usize, &'a T)) {
        let mut at = 0usize;
        if let Some(v) = &self.nodes[0].value {
            visit(0, v);
        }
        for (i, &b) in digits.iter().enumerate() {
            let next = self.nodes[at].children[usize::from(b.wrapping_sub(b'0')).min(9)];
            if next == NONE || !b.is_ascii_digit() {
                return;
            }
            at = next as usize;
            if let Some(v) = &self.nodes[at].value {
                visit(i + 1, v);
            }
        }
    }

    /// True when nothing is stored.
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.len() == 1 && self.nodes[0].value.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_stored_prefix_in_order() {
        let mut t: DigitTrie<Vec<u32>> = DigitTrie::default();
        t.entry(b"1", Vec::new).push(1);
        t.entry(b"1212", Vec::new).push(2);
        t.entry(b"1212555", Vec::new).push(3);
        t.entry(b"1213", Vec::new).push(4);
        t.entry(b"1212", Vec::new).push(5);
        let mut seen = Vec::new();
        t.for_each_prefix_of(b"12125551234", |len, v| seen.push((len, v.clone())));
        assert_eq!(seen, vec![(1, vec![1]), (4, vec![2, 5]), (7, vec![3])]);
        let mut seen = Vec::new();
        t.for_each_prefix_of(b"44", |len, v| seen.push((len, v.clone())));
        assert!(seen.is_empty());
        assert!(!t.is_empty());
        assert!(DigitTrie::<u8>::default().is_empty());
    }
}
