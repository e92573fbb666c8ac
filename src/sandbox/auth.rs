//! Users and access control in Mosquitto's own file formats, so what a
//! reader of the book learns carries over: password files written by
//! `mosquitto_passwd` (`user:$7$…` PBKDF2-SHA512, or `$6$` salted SHA-512)
//! and ACL files (`user`, `topic [read|write|readwrite|deny] T`,
//! `pattern [..] T` with `%c` / `%u`).

use aws_lc_rs::{constant_time, digest, pbkdf2};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {why}")]
    Syntax {
        path: String,
        line: usize,
        why: String,
    },
}

enum Hash {
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2 {
        iterations: NonZeroU32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// `$6$`: SHA-512 of password then salt.
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
}

/// A password file as `mosquitto_passwd` writes it.
pub struct PasswordFile {
    users: HashMap<String, Hash>,
}

impl std::fmt::Debug for PasswordFile {
    // Never print hashes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordFile({} users)", self.users.len())
    }
}

impl PasswordFile {
    pub fn load(path: &Path) -> Result<PasswordFile, AuthFileError> {
        let text = read(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, path: &str) -> Result<PasswordFile, AuthFileError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| AuthFileError::Syntax {
                path: path.to_string(),
                line: i + 1,
                why: why.to_string(),
            };
            let (user, rest) = line
                .split_once(':')
                .ok_or_else(|| bad("expected user:hash (as written by mosquitto_passwd)"))?;
            let b64 = |s: &str| {
                STANDARD
                    .decode(s)
                    .map_err(|_| bad("the salt or hash is not base64"))
            };
            let parts: Vec<&str> = rest.split('$').collect();
            let hash = match parts.as_slice() {
                ["", "7", iterations, salt, hash] => Hash::Pbkdf2 {
                    iterations: iterations
                        .parse::<u32>()
                        .ok()
                        .and_then(NonZeroU32::new)
                        .ok_or_else(|| bad("bad iteration count"))?,
                    salt: b64(salt)?,
                    hash: b64(hash)?,
                },
                ["", "6", salt, hash] => Hash::Sha512 {
                    salt: b64(salt)?,
                    hash: b64(hash)?,
                },
                _ => {
                    return Err(bad(
                        "not a $7$ or $6$ hash: is it a plain-text password? hash the file with mosquitto_passwd -U",
                    ));
                }
            };
            users.insert(user.to_string(), hash);
        }
        Ok(PasswordFile { users })
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `user` exists and `password` is its password (constant time).
    pub fn check(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            }) => pbkdf2::verify(
                pbkdf2::PBKDF2_HMAC_SHA512,
                *iterations,
                salt,
                password,
                hash,
            )
            .is_ok(),
            Some(Hash::Sha512 { salt, hash }) => {
                let mut ctx = digest::Context::new(&digest::SHA512);
                ctx.update(password);
                ctx.update(salt);
                constant_time::verify_slices_are_equal(ctx.finish().as_ref(), hash).is_ok()
            }
            None => false,
        }
    }
}

/// What a client asks to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive a message (delivery).
    Read,
    Write,
    /// Subscribe with a filter.
    Subscribe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Read,
    Write,
    ReadWrite,
    Deny,
}

#[derive(Debug, Clone)]
struct Rule {
    grant: Grant,
    topic: String,
}

/// An ACL file in Mosquitto's format, with Mosquitto's semantics: rules
/// before the first `user` line apply to anonymous clients, `user` rules to
/// that user, `pattern` rules to everyone (`%c` client id, `%u` user name);
/// `deny` wins; what no rule grants is denied.
#[derive(Debug, Clone, Default)]
pub struct AclFile {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

impl AclFile {
    pub fn load(path: &Path) -> Result<AclFile, AuthFileError> {
        let text = read(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, path: &str) -> Result<AclFile, AuthFileError> {
        let mut acl = AclFile::default();
        let mut user: Option<String> = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| AuthFileError::Syntax {
                path: path.to_string(),
                line: i + 1,
                why,
            };
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match word {
                "user" => {
                    if rest.is_empty() {
                        return Err(bad("'user' needs a user name".into()));
                    }
                    user = Some(rest.to_string());
                }
                "topic" | "pattern" => {
                    let (grant, topic) = match rest.split_once(char::is_whitespace) {
                        Some((g @ ("read" | "write" | "readwrite" | "deny"), t)) => {
                            let grant = match g {
                                "read" => Grant::Read,
                                "write" => Grant::Write,
                                "readwrite" => Grant::ReadWrite,
                                _ => Grant::Deny,
                            };
                            (grant, t.trim())
                        }
                        _ => (Grant::ReadWrite, rest),
                    };
                    if topic.is_empty() {
                        return Err(bad(format!("'{word}' needs a topic")));
                    }
                    let rule = Rule {
                        grant,
                        topic: topic.to_string(),
                    };
                    if word == "pattern" {
                        acl.patterns.push(rule);
                    } else {
                        match &user {
                            Some(u) => acl.users.entry(u.clone()).or_default().push(rule),
                            None => acl.anonymous.push(rule),
                        }
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown word '{other}' (expected user, topic or pattern)"
                    )));
                }
            }
        }
        Ok(acl)
    }

    /// Whether the client (`user`, `client_id`) may do `access` on `topic`
    /// (a topic name, or a filter for [`Access::Subscribe`]).
    pub fn allows(&self, user: Option<&str>, client_id: &str, topic: &str, access: Access) -> bool {
        let own = match user {
            Some(u) => self.users.get(u).map_or(&[][..], Vec::as_slice),
            None => &self.anonymous[..],
        };
        let patterns = self.patterns.iter().filter_map(|r| {
            // A %u pattern never applies to a client without a user name.
            if r.topic.contains("%u") && user.is_none() {
                return None;
            }
            Some(Rule {
                grant: r.grant,
                topic: substitute(&r.topic, user.unwrap_or(""), client_id),
            })
        });
        let rules: Vec<Rule> = own.iter().cloned().chain(patterns).collect();
        let covers = |r: &Rule| match access {
            Access::Subscribe => filter_within(topic, &r.topic),
            Access::Read | Access::Write => crate::model::topic::matches(&r.topic, topic),
        };
        if rules.iter().any(|r| r.grant == Grant::Deny && covers(r)) {
            return false;
        }
        rules.iter().any(|r| {
            let granted = matches!(
                (access, r.grant),
                (_, Grant::ReadWrite)
                    | (Access::Read | Access::Subscribe, Grant::Read)
                    | (Access::Write, Grant::Write)
            );
            granted && covers(r)
        })
    }
}

/// `%c` and `%u` replaced; a user name or client id with a wildcard or a
/// slash would widen the rule, so such a client gets a rule that matches
/// nothing it could use.
fn substitute(pattern: &str, user: &str, client_id: &str) -> String {
    let unsafe_part = |s: &str| s.contains(['+', '#', '/']);
    if (pattern.contains("%u") && unsafe_part(user))
        || (pattern.contains("%c") && unsafe_part(client_id))
    {
        return "\u{0}never".to_string();
    }
    pattern.replace("%c", client_id).replace("%u", user)
}

/// Whether every topic `filter` can match is matched by the ACL topic
/// `acl` (Mosquitto's `mosquitto_sub_matches_acl`).
fn filter_within(filter: &str, acl: &str) -> bool {
    let mut f = filter.split('/');
    let mut a = acl.split('/');
    loop {
        match (a.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some(al), Some(fl)) => {
                let ok = match al {
                    "+" => fl != "#",
                    _ => al == fl,
                };
                if !ok {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn read(path: &Path) -> Result<String, AuthFileError> {
    std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written by `mosquitto_passwd -c -b pw alice secret` (Mosquitto 2.0.11).
    const PW7: &str = "alice:$7$101$+StSG/4nKEXOYbmx$yK0XIWuU7+8mBjs3o7a2C+ijTMp6YzJWWBUrCoUHrS7ReO1DHoT+CdlQLLtvy5RelGC7QfQ4lmtBCzqyENK5RQ==\n";

    #[test]
    fn a_mosquitto_passwd_pbkdf2_line_checks_the_right_password_only() {
        let f = PasswordFile::parse(PW7, "pw").unwrap_or_else(|e| panic!("{e}"));
        assert!(f.check("alice", b"secret"));
        assert!(!f.check("alice", b"Secret"));
        assert!(!f.check("bob", b"secret"));
    }

    #[test]
    fn a_sha512_line_checks_password_then_salt() {
        let salt = b"0123456789abcdef";
        let mut ctx = digest::Context::new(&digest::SHA512);
        ctx.update(b"pw");
        ctx.update(salt);
        let line = format!(
            "bob:$6${}${}\n",
            STANDARD.encode(salt),
            STANDARD.encode(ctx.finish().as_ref())
        );
        let f = PasswordFile::parse(&line, "pw").unwrap_or_else(|e| panic!("{e}"));
        assert!(f.check("bob", b"pw"));
        assert!(!f.check("bob", b"px"));
    }

    #[test]
    fn a_plain_text_password_file_is_refused_with_its_line() {
        let e = PasswordFile::parse("# users\nalice:secret\n", "pw")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("pw:2:"), "{e}");
    }

    const ACL: &str = "\
# anonymous clients
topic read public/#

user board001
topic vehicles/#
topic deny vehicles/secret/#
topic write commands/in

pattern readwrite clients/%c/#
pattern read users/%u/#
";

    #[test]
    fn acl_rules_follow_mosquitto_s_sections_and_deny() {
        let acl = AclFile::parse(ACL, "acl").unwrap_or_else(|e| panic!("{e}"));
        use Access::*;
        assert!(acl.allows(None, "a", "public/x", Read));
        assert!(!acl.allows(None, "a", "public/x", Write));
        assert!(!acl.allows(None, "a", "vehicles/1", Read));
        assert!(acl.allows(Some("board001"), "b", "vehicles/1/x", Write));
        assert!(!acl.allows(Some("board001"), "b", "vehicles/secret/k", Read));
        assert!(acl.allows(Some("board001"), "b", "commands/in", Write));
        assert!(!acl.allows(Some("board001"), "b", "commands/in", Read));
        assert!(!acl.allows(Some("board001"), "b", "public/x", Read));
        assert!(acl.allows(Some("x"), "c7", "clients/c7/t", Write));
        assert!(!acl.allows(Some("x"), "c7", "clients/c8/t", Write));
        assert!(acl.allows(Some("x"), "c", "users/x/a", Read));
        assert!(!acl.allows(None, "c", "users//a", Read));
        assert!(!acl.allows(Some("+"), "c", "users/y/a", Read));
    }

    #[test]
    fn a_subscription_must_stay_within_a_rule() {
        let acl = AclFile::parse(ACL, "acl").unwrap_or_else(|e| panic!("{e}"));
        use Access::Subscribe;
        assert!(acl.allows(Some("board001"), "b", "vehicles/+/speed", Subscribe));
        assert!(acl.allows(Some("board001"), "b", "vehicles/#", Subscribe));
        assert!(!acl.allows(Some("board001"), "b", "#", Subscribe));
        assert!(!acl.allows(Some("board001"), "b", "vehicles/secret/#", Subscribe));
        assert!(!acl.allows(Some("board001"), "b", "commands/in", Subscribe));
        assert!(acl.allows(None, "a", "public/+", Subscribe));
    }

    #[test]
    fn an_unknown_acl_word_names_its_line() {
        let e = AclFile::parse("user a\ntopik read x\n", "acl")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("acl:2:"), "{e}");
    }
}
