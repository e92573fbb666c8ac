//! The sandbox's subscription index: a trie of topic levels, so a publish
//! visits only the filters that can match it (O(matching filters)), not
//! every session's every filter.
//!
//! Filters are stored already validated (`validate_topic_filter`); the trie
//! only has to know that `+` is one level, `#` the rest (zero or more levels,
//! so `a/#` also matches `a`), and that wildcards in the first level never
//! match topics starting with `$` (MQTT-4.7.2-1).

use std::collections::HashMap;

/// Identifies a session in the broker's state.
pub type SessionKey = u64;

struct Node<V> {
    children: HashMap<String, Node<V>>,
    plus: Option<Box<Node<V>>>,
    /// Subscribers of `<this node's path>/#`.
    hash: HashMap<SessionKey, V>,
    /// Subscribers of exactly this node's path.
    exact: HashMap<SessionKey, V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            plus: None,
            hash: HashMap::new(),
            exact: HashMap::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_empty()
            && self.exact.is_empty()
    }
}

/// Filters → (subscriber, its options `V`).
pub(crate) struct SubTree<V> {
    root: Node<V>,
    count: usize,
}

impl<V> Default for SubTree<V> {
    fn default() -> Self {
        SubTree {
            root: Node::default(),
            count: 0,
        }
    }
}

impl<V: Copy> SubTree<V> {
    /// Subscriptions held (one per session and filter).
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds or replaces (new QoS) a subscription.
    pub fn insert(&mut self, filter: &str, key: SessionKey, v: V) {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                if node.hash.insert(key, v).is_none() {
                    self.count += 1;
                }
                return;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.children.entry(level.to_string()).or_default()
            };
        }
        if node.exact.insert(key, v).is_none() {
            self.count += 1;
        }
    }

    /// Removes a subscription; true if it existed.
    pub fn remove(&mut self, filter: &str, key: SessionKey) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_at(&mut self.root, &levels, key);
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// Calls `f` for every subscription whose filter matches `topic` (a
    /// session with overlapping filters is reported once per filter).
    pub fn matches(&self, topic: &str, f: &mut impl FnMut(SessionKey, V)) {
        let levels: Vec<&str> = topic.split('/').collect();
        let dollar = topic.starts_with('$');
        visit(&self.root, &levels, dollar, f);
    }
}

fn remove_at<V>(node: &mut Node<V>, levels: &[&str], key: SessionKey) -> bool {
    match levels {
        [] => node.exact.remove(&key).is_some(),
        ["#"] => node.hash.remove(&key).is_some(),
        [level, rest @ ..] => {
            let (removed, empty) = if *level == "+" {
                let Some(child) = node.plus.as_deref_mut() else {
                    return false;
                };
                let removed = remove_at(child, rest, key);
                (removed, child.is_empty())
            } else {
                let Some(child) = node.children.get_mut(*level) else {
                    return false;
                };
                let removed = remove_at(child, rest, key);
                (removed, child.is_empty())
            };
            if empty {
                if *level == "+" {
                    node.plus = None;
                } else {
                    node.children.remove(*level);
                }
            }
            removed
        }
    }
}

fn visit<V: Copy>(
    node: &Node<V>,
    levels: &[&str],
    dollar_first: bool,
    f: &mut impl FnMut(SessionKey, V),
) {
    if !dollar_first {
        for (&k, &q) in &node.hash {
            f(k, q);
        }
    }
    match levels.split_first() {
        None => {
            for (&k, &q) in &node.exact {
                f(k, q);
            }
        }
        Some((level, rest)) => {
            if let Some(child) = node.children.get(*level) {
                visit(child, rest, false, f);
            }
            if !dollar_first && let Some(child) = &node.plus {
                visit(child, rest, false, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::QoS;

    fn matching(tree: &SubTree<QoS>, topic: &str) -> Vec<(SessionKey, u8)> {
        let mut out = Vec::new();
        tree.matches(topic, &mut |k, q| out.push((k, q as u8)));
        out.sort_unstable();
        out
    }

    #[test]
    fn wildcards_match_as_the_spec_says() {
        let mut t = SubTree::<QoS>::default();
        t.insert("sport/tennis/#", 1, QoS::AtMostOnce);
        t.insert("sport/+/player1", 2, QoS::AtLeastOnce);
        t.insert("#", 3, QoS::ExactlyOnce);
        t.insert("+/+", 4, QoS::AtMostOnce);
        t.insert("sport", 5, QoS::AtMostOnce);
        assert_eq!(
            matching(&t, "sport/tennis/player1"),
            [(1, 0), (2, 1), (3, 2)]
        );
        // `#` includes the parent level.
        assert_eq!(matching(&t, "sport/tennis"), [(1, 0), (3, 2), (4, 0)]);
        assert_eq!(matching(&t, "sport"), [(3, 2), (5, 0)]);
        // Empty levels are levels.
        assert_eq!(matching(&t, "/finance"), [(3, 2), (4, 0)]);
    }

    #[test]
    fn first_level_wildcards_skip_dollar_topics() {
        let mut t = SubTree::<QoS>::default();
        t.insert("#", 1, QoS::AtMostOnce);
        t.insert("+/broker/uptime", 2, QoS::AtMostOnce);
        t.insert("$SYS/#", 3, QoS::AtMostOnce);
        assert_eq!(matching(&t, "$SYS/broker/uptime"), [(3, 0)]);
    }

    #[test]
    fn removing_prunes_and_counts() {
        let mut t = SubTree::<QoS>::default();
        t.insert("a/+/c", 1, QoS::AtMostOnce);
        t.insert("a/+/c", 1, QoS::AtLeastOnce);
        t.insert("a/#", 2, QoS::AtMostOnce);
        assert_eq!(t.len(), 2);
        assert_eq!(matching(&t, "a/b/c"), [(1, 1), (2, 0)]);
        assert!(t.remove("a/+/c", 1));
        assert!(!t.remove("a/+/c", 1));
        assert!(t.remove("a/#", 2));
        assert!(t.is_empty());
        assert!(t.root.is_empty());
    }
}
