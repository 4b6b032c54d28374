//! The shapes of every command's request and answer, read once from the WIT files compiled into
//! the host, with the JSON name of every field. The WIT is the one description of what OpenIM
//! sends: the host validates bodies, converts them for plugins and checks their answers from it.
//!
//! JSON names follow one rule, kebab-case to OpenIM's camelCase with `ID`, `IDs` and `URL` upper
//! case (`kicked-user-ids` is `kickedUserIDs`), plus the exceptions in [`JSON_NAMES`]. Go embeds
//! some structs into the top level of the JSON: those fields are in [`FLATTENED`].

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use wit_parser::{Resolve, Type, TypeDefKind, TypeId, TypeOwner};

use super::commands::{COMMANDS, CommandSpec};

/// The WIT files, as compiled into the host (`callback-host new` copies them into projects).
pub const WIT_FILES: &[(&str, &str)] = &[
    ("callback.wit", include_str!("../../../wit/callback.wit")),
    ("user.wit", include_str!("../../../wit/user.wit")),
    ("friend.wit", include_str!("../../../wit/friend.wit")),
    ("group.wit", include_str!("../../../wit/group.wit")),
    ("message.wit", include_str!("../../../wit/message.wit")),
    ("push.wit", include_str!("../../../wit/push.wit")),
    (
        "conversation.wit",
        include_str!("../../../wit/conversation.wit"),
    ),
    ("json.wit", include_str!("../../../wit/json.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];

/// JSON names that the rule does not produce: `interface.record.field` to OpenIM's name.
const JSON_NAMES: &[(&str, &str)] = &[
    ("before-add-friend-agree.request.to-user-id", "blackUserID"),
    (
        "before-add-friend-agree.request.handle-result",
        "HandleResult",
    ),
    ("before-add-friend-agree.request.handle-msg", "HandleMsg"),
    ("after-add-friend-agree.request.to-user-id", "blackUserID"),
    (
        "after-add-friend-agree.request.handle-result",
        "HandleResult",
    ),
    ("after-add-friend-agree.request.handle-msg", "HandleMsg"),
    ("after-single-msg-read.request.seqs", "Seqs"),
    (
        "push-types.offline-push-info.ios-push-sound",
        "iOSPushSound",
    ),
    (
        "push-types.offline-push-info.ios-badge-count",
        "iOSBadgeCount",
    ),
    ("before-msg-modify.changes.face-url", "senderFaceURL"),
    ("before-msg-modify.changes.at-user-list", "atUserIDList"),
    (
        "before-create-single-chat-conversations.request.owner-user-id",
        "ownerUserId",
    ),
    (
        "before-create-single-chat-conversations.request.conversation-id",
        "conversationId",
    ),
    (
        "before-create-single-chat-conversations.request.user-id",
        "userId",
    ),
    (
        "after-create-single-chat-conversations.request.owner-user-id",
        "ownerUserId",
    ),
    (
        "after-create-single-chat-conversations.request.conversation-id",
        "conversationId",
    ),
    (
        "after-create-single-chat-conversations.request.user-id",
        "userId",
    ),
    (
        "before-create-group-chat-conversations.request.owner-user-id",
        "ownerUserId",
    ),
    (
        "before-create-group-chat-conversations.request.conversation-id",
        "conversationId",
    ),
    (
        "before-create-group-chat-conversations.request.group-id",
        "groupId",
    ),
    (
        "after-create-group-chat-conversations.request.owner-user-id",
        "ownerUserId",
    ),
    (
        "after-create-group-chat-conversations.request.conversation-id",
        "conversationId",
    ),
    (
        "after-create-group-chat-conversations.request.group-id",
        "groupId",
    ),
];

/// Record fields whose own fields Go writes into the enclosing JSON object (embedded structs).
const FLATTENED: &[&str] = &[
    "message-types.single-msg.message",
    "message-types.group-msg.message",
    "before-msg-modify.request.message",
    "after-msg-save-db.request.message",
    "before-create-group.request.group-info",
    "after-create-group.request.group-info",
    "push-types.push-request.offline-push-info",
];

/// The shape of a value, as far as JSON and the component model both need it.
#[derive(Debug, Clone)]
pub enum Shape {
    Bool,
    S32,
    S64,
    U32,
    String,
    List(Box<Shape>),
    /// `list<tuple<string, T>>` in WIT, an object in JSON.
    Map(Box<Shape>),
    Option(Box<Shape>),
    Record(Arc<RecordShape>),
    /// A WIT enum (only `log.level`); not found in OpenIM's JSON.
    Enum(Vec<String>),
}

/// A record: its fields in WIT order.
#[derive(Debug)]
pub struct RecordShape {
    /// `interface.record`, for messages.
    pub name: String,
    pub fields: Vec<Field>,
    /// Every JSON name the record reads (flattened records' fields included), to the field
    /// indices that lead to it: `[i]`, or `[i, j]` for field `j` of flattened field `i`.
    pub lookup: HashMap<String, Vec<usize>>,
}

/// One field of a record.
#[derive(Debug)]
pub struct Field {
    /// The WIT name (`group-id`).
    pub wit: String,
    /// OpenIM's JSON name (`groupID`).
    pub json: String,
    pub shape: Shape,
    /// Its fields sit in the enclosing JSON object (a Go embedded struct).
    pub flatten: bool,
}

impl RecordShape {
    /// The field named `wit`.
    pub fn field(&self, wit: &str) -> Option<(usize, &Field)> {
        self.fields.iter().enumerate().find(|(_, f)| f.wit == wit)
    }
}

/// What a plugin returns for a command.
#[derive(Debug, Clone)]
pub enum AnswerShape {
    /// The five common fields only.
    Response,
    /// `record answer { response, changes }`: the changes OpenIM applies.
    WithChanges(Arc<RecordShape>),
}

/// A command with the shapes of its request and answer.
#[derive(Debug)]
pub struct Command {
    pub spec: &'static CommandSpec,
    /// The request record the plugin receives.
    pub request: Arc<RecordShape>,
    pub answer: AnswerShape,
}

impl Command {
    /// The changes record, for commands whose answer may change the operation.
    pub fn changes(&self) -> Option<&RecordShape> {
        match &self.answer {
            AnswerShape::Response => None,
            AnswerShape::WithChanges(changes) => Some(changes),
        }
    }
}

/// Every command with its shapes.
#[derive(Debug)]
pub struct Catalog {
    commands: Vec<Command>,
    by_name: HashMap<&'static str, usize>,
}

impl Catalog {
    /// The catalog of the WIT compiled into the host, built on first use.
    pub fn get() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            Catalog::from_wit(WIT_FILES)
                .expect("the WIT compiled into the host describes every command")
        })
    }

    /// Reads the shapes of every command in [`COMMANDS`] from WIT files.
    pub fn from_wit(files: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut sources = wit_parser::SourceMap::new();
        for (path, text) in files {
            sources.push_str(path, *text);
        }
        let group = sources.parse().map_err(|(_, e)| anyhow::anyhow!("{e}"))?;
        let mut resolve = Resolve::new();
        let package = resolve.push_group(group)?;
        let mut reader = Reader {
            resolve: &resolve,
            records: HashMap::new(),
        };
        let mut commands = Vec::new();
        for spec in COMMANDS {
            let short = spec
                .interface
                .trim_start_matches("openim:callback/")
                .trim_end_matches("@0.1.0");
            let interface = resolve.packages[package]
                .interfaces
                .get(short)
                .ok_or_else(|| anyhow::anyhow!("{}: no interface {short}", spec.name))?;
            let function = resolve.interfaces[*interface]
                .functions
                .get(spec.function)
                .ok_or_else(|| anyhow::anyhow!("{}: no function {}", spec.name, spec.function))?;
            let request = match function.params.get(1).map(|p| reader.shape(&p.ty)) {
                Some(Shape::Record(record)) => record,
                _ => anyhow::bail!(
                    "{}: the second parameter must be the request record",
                    spec.name
                ),
            };
            let answer = match function.result.as_ref().map(|ty| reader.shape(ty)) {
                Some(Shape::Record(record)) if record.name == "types.response" => {
                    AnswerShape::Response
                }
                Some(Shape::Record(record)) => match record.field("changes") {
                    Some((
                        _,
                        Field {
                            shape: Shape::Record(changes),
                            ..
                        },
                    )) => AnswerShape::WithChanges(Arc::clone(changes)),
                    _ => anyhow::bail!("{}: the answer record must have `changes`", spec.name),
                },
                _ => anyhow::bail!(
                    "{}: the result must be a response or an answer record",
                    spec.name
                ),
            };
            commands.push(Command {
                spec,
                request,
                answer,
            });
        }
        let by_name = commands
            .iter()
            .enumerate()
            .map(|(i, c)| (c.spec.name, i))
            .collect();
        Ok(Self { commands, by_name })
    }

    /// The command named `name`.
    pub fn command(&self, name: &str) -> Option<&Command> {
        self.by_name.get(name).map(|i| &self.commands[*i])
    }

    /// Every command, in table order.
    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    /// The table of every command (in `docs/writing-plugins.md`): before or after, its webhooks.yml key, the interface
    /// a plugin exports, and what its answer may change.
    pub fn markdown_table(&self) -> String {
        use super::commands::Phase;
        let mut out = String::from(
            "| command | webhooks.yml key | when | interface (world `<interface>-plugin`) | what a plugin's answer can do |\n|---|---|---|---|---|\n",
        );
        for command in &self.commands {
            let spec = command.spec;
            let interface = spec
                .interface
                .trim_start_matches("openim:callback/")
                .trim_end_matches("@0.1.0");
            let can = match (spec.phase, command.changes()) {
                (Phase::After, _) => "nothing (OpenIM ignores it)".to_owned(),
                (Phase::Before, None) => "refuse".to_owned(),
                (Phase::Before, Some(changes)) => {
                    let names: Vec<String> = changes
                        .fields
                        .iter()
                        .map(|f| format!("`{}`", f.json))
                        .collect();
                    let mut can = format!("refuse, or change {}", names.join(", "));
                    if !spec.rules.echo.is_empty() {
                        can.push_str("; the host echoes what no plugin changed");
                    }
                    if spec.rules.only_if_present {
                        can.push_str("; only fields the request carries");
                    }
                    for field in spec.rules.json_fields {
                        can.push_str(&format!("; `{field}` must be JSON"));
                    }
                    let withheld: Vec<String> = spec
                        .rules
                        .withheld
                        .iter()
                        .map(|(field, _)| format!("`{field}`"))
                        .collect();
                    if !withheld.is_empty() {
                        can.push_str(&format!(
                            "; not {} ([why](../README.md#how-a-callback-is-handled))",
                            withheld.join(", ")
                        ));
                    }
                    can
                }
            };
            let mut keys = format!("`{}`", spec.webhook_keys[0]);
            for unread in &spec.webhook_keys[1..] {
                keys.push_str(&format!(" (and `{unread}`, which OpenIM does not read)"));
            }
            out.push_str(&format!(
                "| `{}` | {keys} | {} | `{interface}` | {can} |\n",
                spec.name,
                if spec.phase == Phase::Before {
                    "before"
                } else {
                    "after"
                },
            ));
        }
        out
    }
}

/// Turns wit-parser types into shapes, sharing each record's shape.
struct Reader<'a> {
    resolve: &'a Resolve,
    records: HashMap<TypeId, Arc<RecordShape>>,
}

impl Reader<'_> {
    fn shape(&mut self, ty: &Type) -> Shape {
        match ty {
            Type::Bool => Shape::Bool,
            Type::S32 => Shape::S32,
            Type::S64 => Shape::S64,
            Type::U32 => Shape::U32,
            Type::String => Shape::String,
            Type::Id(id) => self.defined(*id),
            other => panic!("type {other:?} is not used by the callback contract"),
        }
    }

    fn defined(&mut self, id: TypeId) -> Shape {
        let def = &self.resolve.types[id];
        match &def.kind {
            TypeDefKind::Type(inner) => self.shape(inner),
            TypeDefKind::Option(inner) => Shape::Option(Box::new(self.shape(inner))),
            TypeDefKind::List(Type::Id(inner))
                if matches!(&self.resolve.types[*inner].kind,
                    TypeDefKind::Tuple(t) if t.types.len() == 2 && t.types[0] == Type::String) =>
            {
                let TypeDefKind::Tuple(tuple) = &self.resolve.types[*inner].kind else {
                    unreachable!()
                };
                Shape::Map(Box::new(self.shape(&tuple.types[1])))
            }
            TypeDefKind::List(inner) => Shape::List(Box::new(self.shape(inner))),
            TypeDefKind::Enum(e) => Shape::Enum(e.cases.iter().map(|c| c.name.clone()).collect()),
            TypeDefKind::Record(record) => {
                if let Some(shape) = self.records.get(&id) {
                    return Shape::Record(Arc::clone(shape));
                }
                let owner = match def.owner {
                    TypeOwner::Interface(i) => {
                        self.resolve.interfaces[i].name.clone().unwrap_or_default()
                    }
                    _ => String::new(),
                };
                let name = format!("{owner}.{}", def.name.clone().unwrap_or_default());
                let fields: Vec<Field> = record
                    .fields
                    .iter()
                    .map(|f| {
                        let key = format!("{name}.{}", f.name);
                        Field {
                            json: json_name(&key, &f.name),
                            flatten: FLATTENED.contains(&key.as_str()),
                            shape: self.shape(&f.ty),
                            wit: f.name.clone(),
                        }
                    })
                    .collect();
                let lookup = json_lookup(&fields);
                let shape = Arc::new(RecordShape {
                    name,
                    fields,
                    lookup,
                });
                self.records.insert(id, Arc::clone(&shape));
                Shape::Record(shape)
            }
            other => panic!("type {other:?} is not used by the callback contract"),
        }
    }
}

/// The JSON names a record reads, with the field indices that lead to each.
fn json_lookup(fields: &[Field]) -> HashMap<String, Vec<usize>> {
    let mut lookup = HashMap::new();
    for (i, field) in fields.iter().enumerate() {
        if !field.flatten {
            lookup.insert(field.json.clone(), vec![i]);
            continue;
        }
        let inner = match &field.shape {
            Shape::Record(inner) => inner,
            Shape::Option(inner) => match &**inner {
                Shape::Record(inner) => inner,
                _ => continue,
            },
            _ => continue,
        };
        for (name, path) in &inner.lookup {
            let mut full = vec![i];
            full.extend(path);
            lookup.entry(name.clone()).or_insert(full);
        }
    }
    lookup
}

/// OpenIM's JSON name of the field `key` (`interface.record.field`) named `wit`.
fn json_name(key: &str, wit: &str) -> String {
    if let Some((_, json)) = JSON_NAMES.iter().find(|(k, _)| *k == key) {
        return (*json).to_owned();
    }
    let mut out = String::new();
    for (i, word) in wit.split('-').enumerate() {
        match word {
            "id" if i > 0 => out.push_str("ID"),
            "ids" if i > 0 => out.push_str("IDs"),
            "url" if i > 0 => out.push_str("URL"),
            _ if i == 0 => out.push_str(word),
            _ => {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    out.push(first.to_ascii_uppercase());
                    out.push_str(chars.as_str());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
