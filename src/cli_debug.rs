//! `-d` of `mqscope sub` / `pub`: one line per control packet in the words
//! `mosquitto_sub -d` / `mosquitto_pub -d` (Mosquitto 2.0) print, built from
//! the worker's packet records, so scripts and habits made for the mosquitto
//! clients keep working.

use crate::model::packet::{Direction, PacketKind, PacketRecord};

/// Turns packet records into mosquitto's debug lines.
#[derive(Debug, Default)]
pub struct DebugLog {
    /// The client id, as CONNECT sent it (or the broker assigned it).
    id: String,
    /// The last message id sent: mosquitto numbers QoS 0 publishes too, from
    /// the one counter its SUBSCRIBEs and publishes share.
    last_mid: u16,
    /// mosquitto_sub also prints `Subscribed (mid: N): QOS, …` after SUBACK.
    subscriber: bool,
}

impl DebugLog {
    pub fn new(subscriber: bool) -> DebugLog {
        DebugLog {
            subscriber,
            ..DebugLog::default()
        }
    }

    /// The lines of one record (SUBSCRIBE prints one per filter).
    pub fn lines(&mut self, r: &PacketRecord) -> Vec<String> {
        use Direction::{In, Out};
        use PacketKind as K;
        let d = &r.detail;
        let mid = r.pkid.unwrap_or(0);
        if r.kind == K::Connect
            && let Some(id) = &d.client_id
        {
            self.id = id.clone();
        }
        if r.kind == K::Connack
            && let Some(id) = d
                .props
                .as_ref()
                .and_then(|p| p.assigned_client_identifier.clone())
        {
            self.id = id;
        }
        let who = if self.id.is_empty() {
            "Client (null)".to_string()
        } else {
            format!("Client {}", self.id)
        };
        let publish = |mid: u16| {
            format!(
                "(d{}, q{}, r{}, m{mid}, '{}', ... ({} bytes))",
                u8::from(d.dup.unwrap_or(false)),
                r.qos.unwrap_or(0),
                u8::from(d.retain.unwrap_or(false)),
                d.topic.as_deref().unwrap_or(""),
                d.payload_bytes.unwrap_or(0)
            )
        };
        let rc = d.reason.unwrap_or(0);
        if r.dir == Out && mid != 0 {
            self.last_mid = mid;
        }
        match (r.dir, r.kind) {
            (Out, K::Connect) => vec![format!("{who} sending CONNECT")],
            (In, K::Connack) => vec![format!("{who} received CONNACK ({})", connack_code(r))],
            (Out, K::Publish) => {
                let mid = if mid == 0 {
                    self.last_mid = self.last_mid.wrapping_add(1).max(1);
                    self.last_mid
                } else {
                    mid
                };
                vec![format!("{who} sending PUBLISH {}", publish(mid))]
            }
            (In, K::Publish) => vec![format!("{who} received PUBLISH {}", publish(mid))],
            (In, K::Puback) => vec![format!("{who} received PUBACK (Mid: {mid}, RC:{rc})")],
            (In, K::Pubrec) => vec![format!("{who} received PUBREC (Mid: {mid})")],
            (In, K::Pubrel) => vec![format!("{who} received PUBREL (Mid: {mid})")],
            (In, K::Pubcomp) => vec![format!("{who} received PUBCOMP (Mid: {mid}, RC:{rc})")],
            (Out, K::Puback) => vec![format!("{who} sending PUBACK (m{mid}, rc{rc})")],
            (Out, K::Pubrec) => vec![format!("{who} sending PUBREC (m{mid}, rc{rc})")],
            (Out, K::Pubrel) => vec![format!("{who} sending PUBREL (m{mid})")],
            (Out, K::Pubcomp) => vec![format!("{who} sending PUBCOMP (m{mid})")],
            (Out, K::Subscribe) => d
                .filters
                .iter()
                .map(|(f, q)| {
                    format!(
                        "{who} sending SUBSCRIBE (Mid: {mid}, Topic: {f}, QoS: {q}, Options: 0x00)"
                    )
                })
                .collect(),
            (In, K::Suback) => {
                let mut out = vec![format!("{who} received SUBACK")];
                if self.subscriber {
                    let granted: Vec<String> = d.granted.iter().map(u8::to_string).collect();
                    out.push(format!("Subscribed (mid: {mid}): {}", granted.join(", ")));
                }
                out
            }
            (Out, K::Unsubscribe) => d
                .filters
                .iter()
                .map(|(f, _)| format!("{who} sending UNSUBSCRIBE (Mid: {mid}, Topic: {f})"))
                .collect(),
            (In, K::Unsuback) => vec![format!("{who} received UNSUBACK")],
            (Out, K::Pingreq) => vec![format!("{who} sending PINGREQ")],
            (In, K::Pingresp) => vec![format!("{who} received PINGRESP")],
            (Out, K::Disconnect) => vec![format!("{who} sending DISCONNECT")],
            // mosquitto's own wording: no client id, capital R.
            (In, K::Disconnect) => vec![format!("Received DISCONNECT ({rc})")],
            (dir, kind) => vec![format!(
                "{who} {} {}",
                if dir == Out { "sending" } else { "received" },
                kind.name()
            )],
        }
    }
}

/// The CONNACK code as a number: MQTT 5's reason code, or 3.1.1's return
/// code (0–5), recovered from its words when the record has no number.
fn connack_code(r: &PacketRecord) -> u8 {
    if let Some(code) = r.detail.reason {
        return code;
    }
    use rumqttc::ConnectReturnCode as C;
    let words = r.detail.return_code.as_deref().unwrap_or("");
    [
        (C::RefusedProtocolVersion, 1),
        (C::BadClientId, 2),
        (C::ServiceUnavailable, 3),
        (C::BadUserNamePassword, 4),
        (C::NotAuthorized, 5),
    ]
    .into_iter()
    .find(|(c, _)| crate::mqtt::describe_return_code(*c) == words)
    .map_or(0, |(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(dir: Direction, kind: PacketKind, pkid: Option<u16>) -> PacketRecord {
        PacketRecord::new(0, dir, kind, pkid, 2)
    }

    #[test]
    fn qos1_publish_and_its_ack_read_as_mosquitto_pub_prints_them() {
        let mut log = DebugLog::new(false);
        let mut c = rec(Direction::Out, PacketKind::Connect, None);
        c.detail.client_id = Some("pubby".into());
        assert_eq!(log.lines(&c), ["Client pubby sending CONNECT"]);
        let mut p = rec(Direction::Out, PacketKind::Publish, Some(1));
        p.qos = Some(1);
        p.detail.topic = Some("t".into());
        p.detail.payload_bytes = Some(5);
        p.detail.retain = Some(false);
        assert_eq!(
            log.lines(&p),
            ["Client pubby sending PUBLISH (d0, q1, r0, m1, 't', ... (5 bytes))"]
        );
        assert_eq!(
            log.lines(&rec(Direction::In, PacketKind::Puback, Some(1))),
            ["Client pubby received PUBACK (Mid: 1, RC:0)"]
        );
    }

    #[test]
    fn qos0_publishes_are_numbered_like_mosquitto_does() {
        let mut log = DebugLog::new(false);
        let mut p = rec(Direction::Out, PacketKind::Publish, None);
        p.qos = Some(0);
        p.detail.topic = Some("t".into());
        p.detail.payload_bytes = Some(2);
        assert!(log.lines(&p)[0].contains("m1,"));
        assert!(log.lines(&p)[0].contains("m2,"));
    }

    #[test]
    fn a_qos0_publish_after_a_subscribe_takes_the_next_id_as_in_mosquitto_rr() {
        let mut log = DebugLog::new(true);
        let mut s = rec(Direction::Out, PacketKind::Subscribe, Some(1));
        s.detail.filters = vec![("resp".into(), 0)];
        log.lines(&s);
        let mut p = rec(Direction::Out, PacketKind::Publish, None);
        p.qos = Some(0);
        assert!(log.lines(&p)[0].contains("m2,"));
    }

    #[test]
    fn suback_of_a_subscriber_lists_granted_qos() {
        let mut log = DebugLog::new(true);
        let mut s = rec(Direction::In, PacketKind::Suback, Some(1));
        s.detail.granted = vec![2, 128];
        assert_eq!(
            log.lines(&s),
            [
                "Client (null) received SUBACK",
                "Subscribed (mid: 1): 2, 128"
            ]
        );
    }
}
