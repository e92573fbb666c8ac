//! The topic tree: one node per topic level, in an arena with `u32` ids,
//! message counts per subtree, and the flattened list of visible rows the
//! tree view scrolls over.
//!
//! Built for a million topics: nodes live in one `Vec`, level names in one
//! `String`, and one hash index maps the hash of a node's full path to its id,
//! so a message on a known topic costs one hash of the topic, one lookup and
//! a walk up its levels — no allocation. Children are a linked list
//! (first child, next sibling) sorted lazily, when the rows are rebuilt or
//! the children are asked for in order: a parent with 100,000 children does
//! not move a child array on every insert, and a leaf costs no child array.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Index of a node in the tree's arena.
pub type NodeId = u32;

/// The invisible root; top-level topics are its children.
pub const ROOT: NodeId = 0;

/// Marks a node without a topic slot (no message received on it yet).
pub(crate) const NO_TOPIC: u32 = u32::MAX;

/// End of a child list.
const NONE: NodeId = u32::MAX;

const EXPANDED: u8 = 1;
/// Children were appended out of order and need sorting.
const UNSORTED: u8 = 2;

#[derive(Debug)]
pub(crate) struct Node {
    name_start: u32,
    name_len: u16,
    flags: u8,
    parent: NodeId,
    /// Slot in the store's per-topic data, or `NO_TOPIC`.
    pub(crate) topic: u32,
    first_child: NodeId,
    next_sibling: NodeId,
    /// Topics (nodes with at least one message) strictly below this node.
    subtree_topics: u32,
    /// Messages on this topic and every topic below it.
    subtree_messages: u64,
    /// Newest message time (µs since the epoch) in this subtree.
    subtree_last_us: u64,
    /// Topics in this subtree (itself included) holding a retained message.
    subtree_retained: u32,
}

/// One row of the flattened tree view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub node: NodeId,
    /// 0 for top-level topics.
    pub depth: u16,
}

/// The nodes a filter keeps: those matching it and their ancestors.
/// Computed by [`compute_filter`], a pure function of the tree and the
/// payloads, so it can be run away from the frame path.
#[derive(Clone, Debug, Default)]
pub struct FilterMask {
    /// The lower-cased query.
    query: String,
    keep: Vec<u64>,
}

impl FilterMask {
    pub fn query(&self) -> &str {
        &self.query
    }

    pub fn keeps(&self, id: NodeId) -> bool {
        let i = id as usize;
        self.keep
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn mark(&mut self, id: NodeId) -> bool {
        let i = id as usize;
        if self.keep.len() <= i / 64 {
            self.keep.resize(i / 64 + 1, 0);
        }
        let bit = 1 << (i % 64);
        let was = self.keep[i / 64] & bit != 0;
        self.keep[i / 64] |= bit;
        !was
    }

    /// Number of kept nodes.
    pub fn kept(&self) -> usize {
        self.keep.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// Keys of the index are 32 bits of a keyed hash already; spreading them
/// over 64 bits (the table uses the top bits too) is all that is left.
#[derive(Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Why a topic could not be placed in the tree. The message is still
/// counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("the topic tree is full (4 billion levels or 4 GiB of names)")]
    Full,
    #[error("a topic level is longer than 65,535 bytes")]
    LevelTooLong,
}

/// The topic tree and the view state that shapes its rows (expansion,
/// filter, `$` topics shown or hidden).
pub struct Tree {
    nodes: Vec<Node>,
    names: String,
    /// 32 bits of the keyed hash of a node's full path → node id (9 bytes
    /// a slot). When two paths share a key the second node is not indexed
    /// and is found by scanning its parent's children: correct, and rare
    /// (a few hundred nodes in a million).
    index: HashMap<u32, NodeId, BuildHasherDefault<Spread>>,
    /// Seeded at random per tree: paths cannot be chosen to collide.
    hasher: foldhash::fast::RandomState,
    show_sys: bool,
    filter: Option<FilterMask>,
    rows: Vec<Row>,
    rows_dirty: bool,
    rows_generation: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    pub fn new() -> Self {
        let root = Node {
            name_start: 0,
            name_len: 0,
            flags: EXPANDED,
            parent: ROOT,
            topic: NO_TOPIC,
            first_child: NONE,
            next_sibling: NONE,
            subtree_topics: 0,
            subtree_messages: 0,
            subtree_last_us: 0,
            subtree_retained: 0,
        };
        Tree {
            nodes: vec![root],
            names: String::new(),
            index: HashMap::default(),
            hasher: foldhash::fast::RandomState::default(),
            show_sys: true,
            filter: None,
            rows: Vec::new(),
            rows_dirty: true,
            rows_generation: 0,
        }
    }

    /// Number of nodes, the root included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id as usize)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        (id as usize) < self.nodes.len()
    }

    /// The level name of a node ("" for the root, and for empty levels).
    pub fn name(&self, id: NodeId) -> &str {
        self.node(id).map_or("", |n| self.name_of(n))
    }

    fn name_of(&self, node: &Node) -> &str {
        let start = node.name_start as usize;
        self.names
            .get(start..start + node.name_len as usize)
            .unwrap_or("")
    }

    /// The parent of a node; `None` for the root.
    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        if id == ROOT {
            return None;
        }
        self.node(id).map(|n| n.parent)
    }

    /// Levels from the top, e.g. 3 for `a/b/c`; 0 for the root.
    pub fn depth(&self, mut id: NodeId) -> usize {
        let mut depth = 0;
        while let Some(parent) = self.parent(id) {
            depth += 1;
            id = parent;
        }
        depth
    }

    /// The full topic of a node (`a/b/c`).
    pub fn path(&self, id: NodeId) -> String {
        let mut levels = Vec::new();
        let mut cur = id;
        while let Some(parent) = self.parent(cur) {
            levels.push(self.name(cur));
            cur = parent;
        }
        levels.reverse();
        levels.join("/")
    }

    /// Children in name order (natural order: `s2` before `s10`).
    pub fn children(&mut self, id: NodeId) -> Children<'_> {
        self.sort_children(id);
        self.children_unordered(id)
    }

    /// Children in no particular order, for readers that do not need one.
    pub fn children_unordered(&self, id: NodeId) -> Children<'_> {
        Children {
            tree: self,
            next: self.node(id).map_or(NONE, |n| n.first_child),
        }
    }

    pub fn has_children(&self, id: NodeId) -> bool {
        self.node(id).is_some_and(|n| n.first_child != NONE)
    }

    /// Messages received on this topic and every topic below it.
    pub fn subtree_messages(&self, id: NodeId) -> u64 {
        self.node(id).map_or(0, |n| n.subtree_messages)
    }

    /// Topics (levels that received a message) strictly below this node.
    pub fn subtopic_count(&self, id: NodeId) -> u32 {
        self.node(id).map_or(0, |n| n.subtree_topics)
    }

    /// Time of the newest message in this subtree, µs since the epoch
    /// (0: none yet). Lets a collapsed parent flash when a child changes.
    pub fn subtree_last_us(&self, id: NodeId) -> u64 {
        self.node(id).map_or(0, |n| n.subtree_last_us)
    }

    pub fn is_expanded(&self, id: NodeId) -> bool {
        self.node(id).is_some_and(|n| n.flags & EXPANDED != 0)
    }

    fn hash_path(&self, path: &str) -> u32 {
        // The low half of a keyed hash; see `index`.
        self.hasher.hash_one(path) as u32
    }

    /// Whether node `id` has the full topic `topic`, walking up its levels.
    fn path_is(&self, id: NodeId, topic: &str) -> bool {
        let mut cur = id;
        let mut rest = topic;
        loop {
            let Some(node) = self.node(cur) else {
                return false;
            };
            if cur == ROOT {
                return false;
            }
            let Some(before) = rest.strip_suffix(self.name_of(node)) else {
                return false;
            };
            if node.parent == ROOT {
                return before.is_empty();
            }
            let Some(before) = before.strip_suffix('/') else {
                return false;
            };
            rest = before;
            cur = node.parent;
        }
    }

    /// The node of a full topic, if it exists.
    pub fn find(&self, topic: &str) -> Option<NodeId> {
        if let Some(&id) = self.index.get(&self.hash_path(topic))
            && self.path_is(id, topic)
        {
            return Some(id);
        }
        let mut cur = ROOT;
        for (end, level) in levels(topic) {
            cur = self.child_by_prefix(cur, &topic[..end], level)?;
        }
        (cur != ROOT).then_some(cur)
    }

    fn child_by_prefix(&self, parent: NodeId, prefix: &str, level: &str) -> Option<NodeId> {
        match self.index.get(&self.hash_path(prefix)) {
            Some(&id)
                if self
                    .node(id)
                    .is_some_and(|n| n.parent == parent && self.name_of(n) == level) =>
            {
                Some(id)
            }
            // Absent from the index: a node is only left out of it when its
            // hash slot was taken, so the slot would be occupied.
            None => None,
            Some(_) => self.scan_children(parent, level),
        }
    }

    fn scan_children(&self, parent: NodeId, level: &str) -> Option<NodeId> {
        self.children_unordered(parent)
            .find(|&c| self.node(c).is_some_and(|n| self.name_of(n) == level))
    }

    /// The node of `topic`, creating missing levels. Returns the node and
    /// whether any node was created.
    pub fn find_or_insert(&mut self, topic: &str) -> Result<(NodeId, bool), TreeError> {
        if let Some(&id) = self.index.get(&self.hash_path(topic))
            && self.path_is(id, topic)
        {
            return Ok((id, false));
        }
        let mut cur = ROOT;
        let mut created = false;
        for (end, level) in levels(topic) {
            let prefix = &topic[..end];
            cur = match self.child_by_prefix(cur, prefix, level) {
                Some(id) => id,
                None => {
                    let id = self.push_node(cur, level)?;
                    let hash = self.hash_path(prefix);
                    self.index.entry(hash).or_insert(id);
                    created = true;
                    id
                }
            };
        }
        Ok((cur, created))
    }

    fn push_node(&mut self, parent: NodeId, name: &str) -> Result<NodeId, TreeError> {
        let id = NodeId::try_from(self.nodes.len()).map_err(|_| TreeError::Full)?;
        if id == NONE {
            return Err(TreeError::Full);
        }
        let name_len = u16::try_from(name.len()).map_err(|_| TreeError::LevelTooLong)?;
        let name_start = u32::try_from(self.names.len()).map_err(|_| TreeError::Full)?;
        name_start
            .checked_add(u32::from(name_len))
            .ok_or(TreeError::Full)?;
        let Some(head) = self.node(parent).map(|p| p.first_child) else {
            return Err(TreeError::Full);
        };
        // New children go first; the list stays sorted if the new name
        // sorts before the old head.
        let out_of_order = self
            .node(head)
            .is_some_and(|h| natural_cmp(name, self.name_of(h)) == Ordering::Greater);
        self.names.push_str(name);
        self.nodes.push(Node {
            name_start,
            name_len,
            flags: 0,
            parent,
            topic: NO_TOPIC,
            first_child: NONE,
            next_sibling: head,
            subtree_topics: 0,
            subtree_messages: 0,
            subtree_last_us: 0,
            subtree_retained: 0,
        });
        if let Some(p) = self.nodes.get_mut(parent as usize) {
            p.first_child = id;
            if out_of_order {
                p.flags |= UNSORTED;
            }
        }
        if self.filter.is_none() && self.would_show(id) {
            self.rows_dirty = true;
        }
        Ok(id)
    }

    /// Whether the node appears in the unfiltered rows: every ancestor is
    /// expanded and it is not a hidden `$` topic.
    fn would_show(&self, id: NodeId) -> bool {
        let mut cur = id;
        while let Some(parent) = self.parent(cur) {
            if parent == ROOT {
                return self.show_sys || !self.name(cur).starts_with('$');
            }
            if !self.is_expanded(parent) {
                return false;
            }
            cur = parent;
        }
        false
    }

    /// Counts one message on `id` in it and its ancestors. `first` says it is
    /// the topic's first message (one more topic below each ancestor).
    pub(crate) fn record_message(&mut self, id: NodeId, time_us: u64, first: bool) {
        let mut cur = id;
        loop {
            let Some(node) = self.nodes.get_mut(cur as usize) else {
                return;
            };
            node.subtree_messages += 1;
            node.subtree_last_us = node.subtree_last_us.max(time_us);
            if first && cur != id {
                node.subtree_topics = node.subtree_topics.saturating_add(1);
            }
            if cur == ROOT {
                return;
            }
            cur = node.parent;
        }
    }

    /// `id`'s topic gained (`retained`) or lost its retained message.
    pub(crate) fn adjust_retained(&mut self, id: NodeId, retained: bool) {
        let mut cur = id;
        loop {
            let Some(node) = self.nodes.get_mut(cur as usize) else {
                return;
            };
            node.subtree_retained = if retained {
                node.subtree_retained.saturating_add(1)
            } else {
                node.subtree_retained.saturating_sub(1)
            };
            if cur == ROOT {
                return;
            }
            cur = node.parent;
        }
    }

    /// Topics in `id`'s subtree (itself included) holding a retained message.
    pub fn subtree_retained(&self, id: NodeId) -> u32 {
        self.node(id).map_or(0, |n| n.subtree_retained)
    }

    pub(crate) fn set_topic_slot(&mut self, id: NodeId, slot: u32) {
        if let Some(node) = self.nodes.get_mut(id as usize) {
            node.topic = slot;
        }
    }

    fn sort_children(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(id as usize) else {
            return;
        };
        if node.flags & UNSORTED == 0 {
            return;
        }
        node.flags &= !UNSORTED;
        let mut children: Vec<NodeId> = self.children_unordered(id).collect();
        children.sort_by(|&a, &b| natural_cmp(self.name(a), self.name(b)));
        let mut next = NONE;
        for &child in children.iter().rev() {
            if let Some(node) = self.nodes.get_mut(child as usize) {
                node.next_sibling = next;
            }
            next = child;
        }
        if let Some(node) = self.nodes.get_mut(id as usize) {
            node.first_child = next;
        }
    }

    // ----- view state: expansion, `$` topics, filter, rows -----

    pub fn set_expanded(&mut self, id: NodeId, expanded: bool) {
        if id == ROOT {
            return;
        }
        if let Some(node) = self.nodes.get_mut(id as usize) {
            let was = node.flags & EXPANDED != 0;
            if was != expanded {
                node.flags ^= EXPANDED;
                // Under a filter every kept node is shown expanded, so the
                // rows do not depend on the flag.
                self.rows_dirty |= self.filter.is_none();
            }
        }
    }

    /// Expands every ancestor of `id` so that its row is visible.
    pub fn expand_to(&mut self, id: NodeId) {
        let mut cur = id;
        while let Some(parent) = self.parent(cur) {
            self.set_expanded(parent, true);
            cur = parent;
        }
    }

    pub fn expand_all(&mut self) {
        for node in &mut self.nodes[1..] {
            node.flags |= EXPANDED;
        }
        self.rows_dirty = true;
    }

    pub fn collapse_all(&mut self) {
        for node in &mut self.nodes[1..] {
            node.flags &= !EXPANDED;
        }
        self.rows_dirty = true;
    }

    /// Shows or hides top-level topics that start with `$` (`$SYS`).
    pub fn set_show_sys(&mut self, show: bool) {
        if self.show_sys != show {
            self.show_sys = show;
            self.rows_dirty = true;
        }
    }

    pub fn show_sys(&self) -> bool {
        self.show_sys
    }

    pub fn filter(&self) -> Option<&FilterMask> {
        self.filter.as_ref()
    }

    /// Installs a filter computed by [`compute_filter`] (`None` clears it).
    pub fn set_filter_mask(&mut self, mask: Option<FilterMask>) {
        self.filter = mask;
        self.rows_dirty = true;
    }

    /// Keeps a node that matches the active filter since it was computed
    /// (new topic, new payload). Nodes that stop matching stay until the
    /// filter is set again, so rows do not jump around under the user.
    pub(crate) fn filter_consider(&mut self, id: NodeId, check_path: bool, payload: &[u8]) {
        let Some(mask) = &self.filter else {
            return;
        };
        if mask.keeps(id) || mask.query.is_empty() {
            return;
        }
        let query = mask.query.clone();
        let mut hit = contains_ignore_case(payload, &query);
        if !hit && check_path {
            let mut path = String::new();
            push_lowercase(&mut path, &self.path(id));
            hit = path.contains(&query);
        }
        if hit && let Some(mask) = self.filter.as_mut() {
            let mut cur = id;
            while cur != ROOT && mask.mark(cur) {
                let Some(parent) = self.nodes.get(cur as usize).map(|n| n.parent) else {
                    break;
                };
                cur = parent;
            }
            self.rows_dirty = true;
        }
    }

    /// Increases whenever the rows are rebuilt, so a view can tell that
    /// cached row data (and its selection index) must be re-read.
    pub fn rows_generation(&self) -> u64 {
        self.rows_generation
    }

    /// The visible rows, top to bottom. Rebuilt only when the structure,
    /// expansion, filter or `$` toggle changed since the last call.
    pub fn visible_rows(&mut self) -> &[Row] {
        if self.rows_dirty {
            self.rebuild_rows();
        }
        &self.rows
    }

    /// The row index of a node in the current rows, for scrolling to it.
    pub fn row_of(&mut self, id: NodeId) -> Option<usize> {
        self.visible_rows().iter().position(|r| r.node == id)
    }

    fn rebuild_rows(&mut self) {
        let mut rows = std::mem::take(&mut self.rows);
        rows.clear();
        let mut stack: Vec<(NodeId, u16)> = Vec::new();
        self.push_children(ROOT, 0, &mut stack);
        while let Some((id, depth)) = stack.pop() {
            if id == ROOT {
                continue;
            }
            rows.push(Row { node: id, depth });
            let open = match &self.filter {
                Some(_) => true,
                None => self.is_expanded(id),
            };
            if open {
                self.push_children(id, depth.saturating_add(1), &mut stack);
            }
        }
        self.rows = rows;
        self.rows_dirty = false;
        self.rows_generation += 1;
    }

    /// Pushes the shown children of `id` so that they pop in name order.
    fn push_children(&mut self, id: NodeId, depth: u16, stack: &mut Vec<(NodeId, u16)>) {
        self.sort_children(id);
        let start = stack.len();
        for child in self.children_unordered(id) {
            if let Some(mask) = &self.filter
                && !mask.keeps(child)
            {
                continue;
            }
            if id == ROOT && !self.show_sys && self.name(child).starts_with('$') {
                continue;
            }
            stack.push((child, depth));
        }
        stack[start..].reverse();
    }

    /// Bytes held by the tree (nodes, names, index, rows, filter).
    pub fn memory_estimate(&self) -> usize {
        let buckets = if self.index.capacity() == 0 {
            0
        } else {
            (self.index.capacity() * 8 / 7).next_power_of_two()
        };
        self.nodes.capacity() * size_of::<Node>()
            + self.names.capacity()
            + buckets * (size_of::<(u32, NodeId)>() + 1)
            + self.rows.capacity() * size_of::<Row>()
            + self.filter.as_ref().map_or(0, |f| f.keep.capacity() * 8)
    }
}

/// Iterator over a node's children (see [`Tree::children`]).
pub struct Children<'a> {
    tree: &'a Tree,
    next: NodeId,
}

impl Iterator for Children<'_> {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        let id = self.next;
        self.next = self.tree.node(id)?.next_sibling;
        Some(id)
    }
}

/// The levels of a topic with the byte offset where each level ends.
fn levels(topic: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = 0;
    topic.split('/').map(move |level| {
        let end = start + level.len();
        start = end + 1;
        (end, level)
    })
}

/// Name order for siblings: digit runs compare by value, so `sensor2`
/// sorts before `sensor10`. A total order (ties broken bytewise), as
/// `sort_by` requires.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        if x[i].is_ascii_digit() && y[j].is_ascii_digit() {
            let (si, sj) = (i, j);
            while i < x.len() && x[i].is_ascii_digit() {
                i += 1;
            }
            while j < y.len() && y[j].is_ascii_digit() {
                j += 1;
            }
            let strip = |s: &'_ [u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
            let na = &x[si + strip(&x[si..i])..i];
            let nb = &y[sj + strip(&y[sj..j])..j];
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            let ord = x[i].cmp(&y[j]);
            if ord != Ordering::Equal {
                return ord;
            }
            i += 1;
            j += 1;
        }
    }
    (x.len() - i).cmp(&(y.len() - j)).then_with(|| a.cmp(b))
}

/// Appends `s` lower-cased (ASCII fast path; full Unicode otherwise).
fn push_lowercase(out: &mut String, s: &str) {
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| char::from(b.to_ascii_lowercase())));
    } else {
        out.extend(s.chars().flat_map(char::to_lowercase));
    }
}

/// Whether `haystack` contains the lower-cased `needle`, ignoring case.
/// ASCII needles are searched in the raw bytes (no allocation); others in
/// the lower-cased text of a UTF-8 haystack.
pub fn contains_ignore_case(haystack: &[u8], needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.is_ascii() {
        return ascii_contains_ignore_case(haystack, needle.as_bytes());
    }
    std::str::from_utf8(haystack).is_ok_and(|text| text.to_lowercase().contains(needle))
}

/// `needle` must be lower-case ASCII. Jumps between occurrences of the
/// needle's first byte (either case) instead of comparing every window.
fn ascii_contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    let Some(last_start) = haystack.len().checked_sub(needle.len()) else {
        return false;
    };
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let mut i = 0;
    while i <= last_start {
        let Some(skip) = haystack[i..=last_start]
            .iter()
            .position(|&b| b == lower || b == upper)
        else {
            return false;
        };
        i += skip;
        if haystack[i..i + needle.len()].eq_ignore_ascii_case(needle) {
            return true;
        }
        i += 1;
    }
    false
}

/// Computes which nodes a text filter keeps: nodes whose full topic or last
/// payload contains `query` (case-insensitive), and their ancestors. A pure
/// function of its inputs; `payload_of` gives the last payload of a node.
/// An empty query keeps everything (callers usually clear the filter).
pub fn compute_filter<'a>(
    tree: &'a Tree,
    query: &str,
    payload_of: impl Fn(NodeId) -> Option<&'a [u8]>,
) -> FilterMask {
    let mut job = FilterJob::new(tree, query);
    job.step(tree, payload_of, usize::MAX);
    job.into_mask()
}

/// A filter computed a slice at a time, so that a tree of a million topics
/// is filtered over several frames instead of freezing one. The tree may
/// grow between slices: nodes added meanwhile are checked at the end.
#[derive(Debug)]
pub struct FilterJob {
    mask: FilterMask,
    /// (node, length of the parent's path in `path`)
    stack: Vec<(NodeId, usize)>,
    path: String,
    /// Nodes the tree had when the job started (the walk covers those).
    start_nodes: usize,
    visited: usize,
    done: bool,
}

impl FilterJob {
    pub fn new(tree: &Tree, query: &str) -> FilterJob {
        let mut lowered = String::new();
        push_lowercase(&mut lowered, query.trim());
        FilterJob {
            mask: FilterMask {
                query: lowered,
                keep: vec![0; tree.nodes.len().div_ceil(64)],
            },
            stack: tree.children_unordered(ROOT).map(|c| (c, 0)).collect(),
            path: String::new(),
            start_nodes: tree.nodes.len(),
            visited: 0,
            done: false,
        }
    }

    /// The lower-cased query.
    pub fn query(&self) -> &str {
        &self.mask.query
    }

    /// (nodes checked, nodes to check) for a progress display.
    pub fn progress(&self) -> (usize, usize) {
        (self.visited, self.start_nodes.saturating_sub(1))
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Checks up to `max_nodes` more nodes; true once the whole tree is done.
    pub fn step<'a>(
        &mut self,
        tree: &'a Tree,
        payload_of: impl Fn(NodeId) -> Option<&'a [u8]>,
        max_nodes: usize,
    ) -> bool {
        if self.done {
            return true;
        }
        let mut budget = max_nodes;
        while budget > 0 {
            let Some((id, parent_len)) = self.stack.pop() else {
                break;
            };
            budget -= 1;
            self.visited += 1;
            self.path.truncate(parent_len);
            if parent_len > 0 || tree.parent(id) != Some(ROOT) {
                self.path.push('/');
            }
            push_lowercase(&mut self.path, tree.name(id));
            let hit = self.path.contains(&self.mask.query)
                || payload_of(id).is_some_and(|p| contains_ignore_case(p, &self.mask.query));
            if hit {
                self.keep_with_ancestors(tree, id);
            }
            let len = self.path.len();
            self.stack.extend(
                tree.children_unordered(id)
                    .filter(|&c| (c as usize) < self.start_nodes)
                    .map(|c| (c, len)),
            );
        }
        if !self.stack.is_empty() {
            return false;
        }
        // Nodes created while the job ran: few, checked by their full path.
        let mut lowered = String::new();
        for id in self.start_nodes..tree.nodes.len() {
            let Ok(id) = NodeId::try_from(id) else {
                break;
            };
            lowered.clear();
            push_lowercase(&mut lowered, &tree.path(id));
            if lowered.contains(&self.mask.query)
                || payload_of(id).is_some_and(|p| contains_ignore_case(p, &self.mask.query))
            {
                self.keep_with_ancestors(tree, id);
            }
        }
        self.done = true;
        true
    }

    fn keep_with_ancestors(&mut self, tree: &Tree, id: NodeId) {
        let mut cur = id;
        while cur != ROOT && self.mask.mark(cur) {
            cur = tree.parent(cur).unwrap_or(ROOT);
        }
    }

    /// The finished mask (install it with `Tree::set_filter_mask`).
    pub fn into_mask(self) -> FilterMask {
        self.mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_job_in_slices_matches_the_whole_walk_and_sees_nodes_added_meanwhile() {
        let mut tree = Tree::new();
        for i in 0..500 {
            let (id, _) = tree
                .find_or_insert(&format!("site{}/dev{i}/temp", i % 7))
                .expect("room");
            tree.record_message(id, 1, true);
        }
        let whole = compute_filter(&tree, "DEV4", |_| None);
        let mut job = FilterJob::new(&tree, "dev4");
        let mut slices = 0;
        while !job.step(&tree, |_| None, 37) {
            slices += 1;
            if slices == 3 {
                // The tree grows between slices, as messages keep arriving.
                tree.find_or_insert("late/dev4x").expect("room");
            }
        }
        assert!(slices > 10, "the work was spread over slices");
        let sliced = job.into_mask();
        for id in 0..whole.keep.len() * 64 {
            let id = id as NodeId;
            if (id as usize) < 500 * 2 {
                assert_eq!(whole.keeps(id), sliced.keeps(id), "node {id}");
            }
        }
        let late = tree.find("late/dev4x").expect("added");
        assert!(
            sliced.keeps(late),
            "a node added during the job is checked too"
        );
        assert!(sliced.keeps(tree.find("late").expect("parent")));
    }

    fn tree_with(topics: &[&str]) -> Tree {
        let mut tree = Tree::new();
        for t in topics {
            let (id, _) = tree.find_or_insert(t).expect("room in the tree");
            tree.record_message(id, 1, true);
        }
        tree
    }

    fn row_paths(tree: &mut Tree) -> Vec<String> {
        let rows = tree.visible_rows().to_vec();
        rows.iter()
            .map(|r| format!("{}{}", "  ".repeat(r.depth as usize), tree.name(r.node)))
            .collect()
    }

    #[test]
    fn insert_creates_levels_and_finds_them_again() {
        let mut tree = Tree::new();
        let (leaf, created) = tree.find_or_insert("home/kitchen/temp").expect("room");
        assert!(created);
        assert_eq!(tree.node_count(), 4);
        assert_eq!(tree.path(leaf), "home/kitchen/temp");
        assert_eq!(tree.find_or_insert("home/kitchen/temp"), Ok((leaf, false)));
        assert_eq!(tree.find("home/kitchen/temp"), Some(leaf));
        let kitchen = tree
            .find("home/kitchen")
            .expect("intermediate level exists");
        assert_eq!(tree.parent(leaf), Some(kitchen));
        assert_eq!(tree.find("home/kitchen/tem"), None);
        assert_eq!(tree.find("kitchen/temp"), None);
        assert_eq!(tree.depth(leaf), 3);
    }

    #[test]
    fn empty_levels_are_levels() {
        let mut tree = Tree::new();
        let (a, _) = tree.find_or_insert("/a").expect("room");
        let (b, _) = tree.find_or_insert("a//b/").expect("room");
        assert_eq!(tree.path(a), "/a");
        assert_eq!(tree.path(b), "a//b/");
        assert_eq!(tree.depth(b), 4);
        assert_ne!(tree.find("/a"), tree.find("a"));
    }

    #[test]
    fn counts_cover_own_and_subtree_messages_and_subtopics() {
        let mut tree = Tree::new();
        let (temp, _) = tree.find_or_insert("home/kitchen/temp").expect("room");
        tree.record_message(temp, 10, true);
        tree.record_message(temp, 20, false);
        let (hum, _) = tree.find_or_insert("home/kitchen/hum").expect("room");
        tree.record_message(hum, 15, true);
        let (home, _) = tree.find_or_insert("home").expect("room");
        tree.record_message(home, 5, true);
        let kitchen = tree.find("home/kitchen").expect("exists");
        assert_eq!(tree.subtree_messages(kitchen), 3);
        assert_eq!(tree.subtopic_count(kitchen), 2);
        assert_eq!(tree.subtree_messages(home), 4);
        assert_eq!(
            tree.subtopic_count(home),
            2,
            "home itself is not below home"
        );
        assert_eq!(tree.subtopic_count(ROOT), 3);
        assert_eq!(tree.subtree_last_us(home), 20);
        assert_eq!(tree.subtree_messages(temp), 2);
    }

    #[test]
    fn children_sorted_by_name_in_natural_order() {
        let mut tree = tree_with(&["s/b", "s/sensor10", "s/a", "s/sensor2", "s/B"]);
        let s = tree.find("s").expect("exists");
        let ids: Vec<NodeId> = tree.children(s).collect();
        let names: Vec<&str> = ids.iter().map(|&c| tree.name(c)).collect();
        assert_eq!(names, ["B", "a", "b", "sensor2", "sensor10"]);
    }

    #[test]
    fn natural_order_is_total_with_leading_zeros() {
        let mut names = vec!["a01", "a1", "a001", "a2", "a", "a10b", "a10a"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["a", "a001", "a01", "a1", "a2", "a10a", "a10b"]);
    }

    #[test]
    fn rows_follow_expand_and_collapse() {
        let mut tree = tree_with(&["a/x/1", "a/y", "b"]);
        assert_eq!(row_paths(&mut tree), ["a", "b"]);
        let generation = tree.rows_generation();
        let a = tree.find("a").expect("exists");
        tree.set_expanded(a, true);
        assert_eq!(row_paths(&mut tree), ["a", "  x", "  y", "b"]);
        assert!(tree.rows_generation() > generation);
        let x = tree.find("a/x").expect("exists");
        tree.set_expanded(x, true);
        assert_eq!(row_paths(&mut tree), ["a", "  x", "    1", "  y", "b"]);
        tree.set_expanded(a, false);
        assert_eq!(row_paths(&mut tree), ["a", "b"]);
        tree.expand_all();
        assert_eq!(tree.visible_rows().len(), 5);
        tree.collapse_all();
        assert_eq!(row_paths(&mut tree), ["a", "b"]);
    }

    #[test]
    fn rows_not_rebuilt_without_change() {
        let mut tree = tree_with(&["a/b", "c"]);
        tree.visible_rows();
        let generation = tree.rows_generation();
        tree.visible_rows();
        // A new topic under a collapsed parent does not change the rows.
        tree.find_or_insert("a/new").expect("room");
        tree.visible_rows();
        assert_eq!(tree.rows_generation(), generation);
        tree.find_or_insert("d").expect("room");
        assert_eq!(row_paths(&mut tree), ["a", "c", "d"]);
        assert!(tree.rows_generation() > generation);
    }

    #[test]
    fn sys_topics_hidden_by_toggle() {
        let mut tree = tree_with(&["$SYS/broker/uptime", "home/temp"]);
        assert_eq!(row_paths(&mut tree), ["$SYS", "home"]);
        tree.set_show_sys(false);
        assert_eq!(row_paths(&mut tree), ["home"]);
        tree.set_show_sys(true);
        assert_eq!(row_paths(&mut tree), ["$SYS", "home"]);
    }

    #[test]
    fn filter_on_path_keeps_ancestors_case_insensitive() {
        let mut tree = tree_with(&["home/Kitchen/temp", "home/garage/door", "office/temp"]);
        let mask = compute_filter(&tree, "KITCHEN", |_| None);
        tree.set_filter_mask(Some(mask));
        assert_eq!(row_paths(&mut tree), ["home", "  Kitchen", "    temp"]);
        let mask = compute_filter(&tree, "temp", |_| None);
        tree.set_filter_mask(Some(mask));
        assert_eq!(
            row_paths(&mut tree),
            ["home", "  Kitchen", "    temp", "office", "  temp"]
        );
        // A path match may span levels.
        let mask = compute_filter(&tree, "garage/D", |_| None);
        tree.set_filter_mask(Some(mask));
        assert_eq!(row_paths(&mut tree), ["home", "  garage", "    door"]);
        tree.set_filter_mask(None);
        assert_eq!(row_paths(&mut tree), ["home", "office"]);
    }

    #[test]
    fn filter_on_payload_text_case_insensitive() {
        let mut tree = tree_with(&["a/door", "a/window", "b"]);
        let door = tree.find("a/door").expect("exists");
        let mask = compute_filter(&tree, "open", |id| {
            (id == door).then_some(&b"{\"state\":\"OPEN\"}"[..])
        });
        tree.set_filter_mask(Some(mask));
        assert_eq!(row_paths(&mut tree), ["a", "  door"]);
    }

    #[test]
    fn filter_keeps_new_matching_topics() {
        let mut tree = tree_with(&["a/b"]);
        let mask = compute_filter(&tree, "zzz", |_| None);
        tree.set_filter_mask(Some(mask));
        assert!(tree.visible_rows().is_empty());
        let (id, created) = tree.find_or_insert("x/zzz").expect("room");
        tree.filter_consider(id, created, b"");
        let (other, created) = tree.find_or_insert("x/other").expect("room");
        tree.filter_consider(other, created, b"payload with ZZZ inside");
        let (none, created) = tree.find_or_insert("x/none").expect("room");
        tree.filter_consider(none, created, b"nothing");
        assert_eq!(row_paths(&mut tree), ["x", "  other", "  zzz"]);
    }

    #[test]
    fn contains_ignore_case_handles_ascii_and_unicode() {
        assert!(contains_ignore_case(b"Hello World", "world"));
        assert!(contains_ignore_case(b"wwWorld", "world"));
        assert!(contains_ignore_case(b"WORLD", "world"));
        assert!(!contains_ignore_case(b"worl", "world"));
        assert!(!contains_ignore_case(b"", "w"));
        assert!(!contains_ignore_case(b"Hello", "help"));
        assert!(contains_ignore_case("ÜBER".as_bytes(), "über"));
        assert!(!contains_ignore_case(&[0xff, 0xfe], "über"));
    }
}
