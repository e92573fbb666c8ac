//! MQTT topic names and filters (MQTT 3.1.1 §4.7, MQTT 5 §4.7): validation,
//! and matching with `+`, `#` and `$` topics.

/// Longest UTF-8 string MQTT can encode (a two-byte length prefix).
pub const MQTT_STRING_MAX: usize = 65_535;

/// Checks a topic name a message is published to (MQTT 3.1.1 §4.7).
pub fn validate_topic_name(topic: &str) -> Result<(), String> {
    check_topic_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(format!(
            "wildcards '+' and '#' are only allowed in subscriptions, not in a topic name: {topic}"
        ));
    }
    Ok(())
}

/// Checks a subscription's topic filter (MQTT 3.1.1 §4.7.1).
pub fn validate_topic_filter(filter: &str) -> Result<(), String> {
    check_topic_common(filter)?;
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') {
            if *level != "#" {
                return Err(format!("'#' must fill a whole level: {filter}"));
            }
            if i != last {
                return Err(format!("'#' must be the last level: {filter}"));
            }
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("'+' must fill a whole level: {filter}"));
        }
    }
    Ok(())
}

fn check_topic_common(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("topic must not be empty".into());
    }
    if topic.contains('\0') {
        return Err("topic must not contain a NUL character".into());
    }
    if topic.len() > MQTT_STRING_MAX {
        return Err(format!(
            "topic is {} bytes; MQTT allows at most {MQTT_STRING_MAX}",
            topic.len()
        ));
    }
    Ok(())
}

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
