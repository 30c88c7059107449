//! Events out: what downstream applications learn of each change orgsync
//! makes. An event is written in the transaction of its change (an outbox),
//! numbered afterwards in commit order per org, read through the events API
//! by cursor and pushed to webhook endpoints.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::membership::{Member, MemberStatus};
use crate::org::OrgId;

/// The kinds of events, by their public names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    MemberCreated,
    MemberUpdated,
    MemberSuspended,
    MemberRemoved,
    ConnectionActivated,
    ConnectionDeactivated,
    SyncRunCompleted,
    SyncRunFailed,
    SyncRemovalsHeld,
    /// Recorded on the parent of the org deleted.
    OrganizationDeleted,
    WebhookEndpointDisabled,
    /// Sent only by `POST /webhooks/{id}/test`, never recorded for the API.
    WebhookTest,
    DirectoryUserCreated,
    DirectoryUserUpdated,
    DirectoryUserDeleted,
    DirectoryGroupCreated,
    DirectoryGroupUpdated,
    DirectoryGroupDeleted,
    DirectoryGroupUserAdded,
    DirectoryGroupUserRemoved,
}

impl EventType {
    pub const ALL: [Self; 20] = [
        Self::MemberCreated,
        Self::MemberUpdated,
        Self::MemberSuspended,
        Self::MemberRemoved,
        Self::ConnectionActivated,
        Self::ConnectionDeactivated,
        Self::SyncRunCompleted,
        Self::SyncRunFailed,
        Self::SyncRemovalsHeld,
        Self::OrganizationDeleted,
        Self::WebhookEndpointDisabled,
        Self::WebhookTest,
        Self::DirectoryUserCreated,
        Self::DirectoryUserUpdated,
        Self::DirectoryUserDeleted,
        Self::DirectoryGroupCreated,
        Self::DirectoryGroupUpdated,
        Self::DirectoryGroupDeleted,
        Self::DirectoryGroupUserAdded,
        Self::DirectoryGroupUserRemoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MemberCreated => "member.created",
            Self::MemberUpdated => "member.updated",
            Self::MemberSuspended => "member.suspended",
            Self::MemberRemoved => "member.removed",
            Self::ConnectionActivated => "connection.activated",
            Self::ConnectionDeactivated => "connection.deactivated",
            Self::SyncRunCompleted => "sync.run.completed",
            Self::SyncRunFailed => "sync.run.failed",
            Self::SyncRemovalsHeld => "sync.removals_held",
            Self::OrganizationDeleted => "organization.deleted",
            Self::WebhookEndpointDisabled => "webhook.endpoint.disabled",
            Self::WebhookTest => "webhook.test",
            Self::DirectoryUserCreated => "directory.user.created",
            Self::DirectoryUserUpdated => "directory.user.updated",
            Self::DirectoryUserDeleted => "directory.user.deleted",
            Self::DirectoryGroupCreated => "directory.group.created",
            Self::DirectoryGroupUpdated => "directory.group.updated",
            Self::DirectoryGroupDeleted => "directory.group.deleted",
            Self::DirectoryGroupUserAdded => "directory.group.user_added",
            Self::DirectoryGroupUserRemoved => "directory.group.user_removed",
        }
    }

    /// # Errors
    /// `Invalid` naming `field` for a name no event has.
    pub fn parse(name: &str, field: &str) -> crate::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| {
                crate::Error::invalid(
                    field,
                    format!(
                        "unknown event type {:?}; known: {}",
                        name.chars().take(64).collect::<String>(),
                        Self::ALL.map(Self::as_str).join(", ")
                    ),
                )
            })
    }
}

impl EventType {
    /// Names as a caller gives them (a filter, a subscription): each known,
    /// no more than there are types; deduplicated and in a stable order.
    ///
    /// # Errors
    /// `Invalid` naming `field`.
    pub fn parse_list<'a>(
        names: impl IntoIterator<Item = &'a str>,
        field: &str,
    ) -> crate::Result<Vec<Self>> {
        let mut types = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            if i >= Self::ALL.len() {
                return Err(crate::Error::invalid(field, "lists more types than exist"));
            }
            types.push(Self::parse(name, field)?);
        }
        types.sort();
        types.dedup();
        Ok(types)
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::parse(&name, "type").map_err(serde::de::Error::custom)
    }
}

/// One event. `seq` is its place in its org's order, `None` until numbered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub org_id: OrgId,
    /// The resource as the admin API shows it (after the change; as it was,
    /// for a removal).
    pub data: Payload,
    /// For updates: the changed fields as they were before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Payload>,
    #[serde(skip)]
    pub seq: Option<i64>,
}

impl Event {
    pub fn new(org_id: OrgId, event_type: EventType, data: Value, at: OffsetDateTime) -> Self {
        Self::of(org_id, event_type, Payload::from(data), at)
    }

    fn of(org_id: OrgId, event_type: EventType, data: Payload, at: OffsetDateTime) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type,
            occurred_at: at,
            org_id,
            data,
            previous: None,
            seq: None,
        }
    }

    pub fn member_created(member: &Member, at: OffsetDateTime) -> Self {
        Self::of(
            member.org_id,
            EventType::MemberCreated,
            Payload::of(member),
            at,
        )
    }

    pub fn member_removed(member: &Member, at: OffsetDateTime) -> Self {
        Self::of(
            member.org_id,
            EventType::MemberRemoved,
            Payload::of(member),
            at,
        )
    }

    /// `member.suspended` when the change suspends, `member.updated`
    /// otherwise (reactivation included); `None` when nothing visible changed.
    pub fn member_changed(before: &Member, after: &Member, at: OffsetDateTime) -> Option<Self> {
        MemberUpdate::of(before, after, at).map(|update| update.event)
    }
}

/// An update's event and the fields it changed as they are after it (the
/// event's `previous` holds them as they were): what the update's audit
/// entry records, worked out once for both.
pub struct MemberUpdate {
    pub event: Event,
    pub changed: Map<String, Value>,
}

impl MemberUpdate {
    /// `None` when nothing visible changed (`updated_at` aside).
    pub fn of(before: &Member, after: &Member, at: OffsetDateTime) -> Option<Self> {
        let (Value::Object(was), Value::Object(now)) = (view(before), view(after)) else {
            return None;
        };
        let previous = changed_fields(&was, &now)?;
        let changed = previous
            .keys()
            .map(|key| (key.clone(), now.get(key).cloned().unwrap_or(Value::Null)))
            .collect();
        let event_type = match (before.status, after.status) {
            (MemberStatus::Active, MemberStatus::Suspended) => EventType::MemberSuspended,
            _ => EventType::MemberUpdated,
        };
        let mut event = Event::new(after.org_id, event_type, Value::Object(now), at);
        event.previous = Some(Payload::from(Value::Object(previous)));
        Some(Self { event, changed })
    }
}

fn view(member: &Member) -> Value {
    serde_json::to_value(member).unwrap_or(Value::Null)
}

/// The fields that differ, with their values before (`updated_at` aside:
/// it changes with every write and says nothing).
fn changed_fields(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Option<Map<String, Value>> {
    let changed: Map<String, Value> = after
        .keys()
        .chain(before.keys())
        .filter(|key| *key != "updated_at" && before.get(*key) != after.get(*key))
        .map(|key| (key.clone(), before.get(key).cloned().unwrap_or(Value::Null)))
        .collect();
    (!changed.is_empty()).then_some(changed)
}

/// An event's JSON document, serialized once when the event is made and
/// passed on as that text: to the events table, to the events API and to
/// webhook receivers. A bulk write makes a million of them; building each
/// as a tree of values first and printing it later cost more than the
/// write itself.
#[derive(Clone)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// `value` serialized (`null` if it cannot be: no type of ours fails).
    pub fn of(value: &impl Serialize) -> Self {
        serde_json::value::to_raw_value(value).map_or_else(|_| Self::null(), Self)
    }

    fn null() -> Self {
        Self(RawValue::NULL.to_owned())
    }

    /// A stored document, checked to be JSON.
    ///
    /// # Errors
    /// When `text` is not JSON.
    pub fn from_json(text: String) -> serde_json::Result<Self> {
        RawValue::from_string(text).map(Self)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The document as values, for a reader that looks inside.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.as_str()).unwrap_or(Value::Null)
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self::of(&value)
    }
}

/// Equal when the documents are: the same values, whatever their layout.
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Self)
    }
}

/// Where a reader of an org's (or a subtree's) events stands: after event
/// `seq` of its tenant's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventCursor(pub i64);

/// Which events a reader wants.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub after: EventCursor,
    /// Empty: every type.
    pub types: Vec<EventType>,
    pub limit: u64,
    /// The org's descendants' events too, in the same order.
    pub include_descendants: bool,
}

/// Largest page of the events API: readers catching up on a big resync page
/// through hundreds of thousands of events.
pub const MAX_EVENTS_PAGE: u64 = 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::Role;

    fn member() -> Member {
        Member::example("ada@example.com")
    }

    #[test]
    fn every_type_reads_back_from_its_name_and_nothing_else_does() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str(), "types").ok(), Some(t));
        }
        for bad in [
            "",
            "member",
            "member.created ",
            "MEMBER.CREATED",
            "member.*",
        ] {
            assert!(EventType::parse(bad, "types").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_update_carries_the_changed_fields_before_and_the_member_after() {
        let before = member();
        let mut after = before.clone();
        after.role = Role::Admin;
        after.updated_at = OffsetDateTime::now_utc();
        let event =
            Event::member_changed(&before, &after, after.updated_at).expect("a visible change");
        assert_eq!(event.event_type, EventType::MemberUpdated);
        assert_eq!(event.data.to_value()["role"], "admin");
        assert_eq!(
            event.previous.map(|p| p.to_value()),
            Some(serde_json::json!({"role": "user"}))
        );
        let update = MemberUpdate::of(&before, &after, after.updated_at).expect("a visible change");
        assert_eq!(
            Value::Object(update.changed),
            serde_json::json!({"role": "admin"})
        );
    }

    #[test]
    fn a_suspension_is_its_own_type_and_a_touch_is_no_event() {
        let before = member();
        let mut touched = before.clone();
        touched.updated_at = OffsetDateTime::now_utc();
        assert!(Event::member_changed(&before, &touched, touched.updated_at).is_none());
        let mut suspended = before.clone();
        suspended.status = MemberStatus::Suspended;
        let event = Event::member_changed(&before, &suspended, suspended.updated_at)
            .expect("a visible change");
        assert_eq!(event.event_type, EventType::MemberSuspended);
        let back = Event::member_changed(&suspended, &before, before.updated_at)
            .expect("a visible change");
        assert_eq!(back.event_type, EventType::MemberUpdated);
    }
}
