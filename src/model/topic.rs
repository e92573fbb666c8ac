//! MQTT topic filter matching (MQTT 3.1.1 §4.7): `+`, `#` and `$` topics.
//!
//! Filters are validated elsewhere (`profile::validate_topic_filter`); this
//! module only answers "does this filter match this topic name".

/// Whether `filter` matches `topic`, following MQTT 3.1.1 §4.7:
///
/// * `+` matches exactly one level (which may be empty);
/// * `#` matches any number of levels, including the parent level itself
///   (`a/#` matches `a`);
/// * topics starting with `$` (such as `$SYS/...`) are not matched by a
///   filter that starts with a wildcard (`#`, `+/...`), only by a filter
///   that names the `$` level (`$SYS/#`).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            // `#` is last in a valid filter; it also matches when the topic
            // has no more levels (the parent level).
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) => {
                if f != t {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn exact_filter_matches_only_same_topic() {
        assert!(matches("a/b/c", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b/C"));
    }

    #[test]
    fn plus_matches_exactly_one_level() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/+", "a/x"));
        assert!(!matches("a/+", "a"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("+", "a"));
        assert!(!matches("+", "a/b"));
        // An empty level is still a level.
        assert!(matches("a/+", "a/"));
    }

    #[test]
    fn hash_matches_all_levels_below_and_the_parent() {
        assert!(matches("a/#", "a/b"));
        assert!(matches("a/#", "a/b/c/d"));
        assert!(matches("a/#", "a"));
        assert!(!matches("a/#", "b/a"));
        assert!(matches("#", "anything/at/all"));
        assert!(matches("a/+/#", "a/b"));
        assert!(!matches("a/+/#", "a"));
    }

    #[test]
    fn sys_topics_not_matched_by_leading_wildcards() {
        assert!(!matches("#", "$SYS/broker/uptime"));
        assert!(!matches("+/broker/uptime", "$SYS/broker/uptime"));
        assert!(!matches("+/#", "$SYS/broker"));
        assert!(matches("$SYS/#", "$SYS/broker/uptime"));
        assert!(matches("$SYS/+/uptime", "$SYS/broker/uptime"));
        // A `$` later in the topic is an ordinary character.
        assert!(matches("#", "a/$b"));
        assert!(matches("a/+", "a/$b"));
    }
}
