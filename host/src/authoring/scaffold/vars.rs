//! The values `new`'s templates are filled with, from the command's shapes: names in each
//! language's case, the world, the request and answer types, and the answer each template writes.

use super::KICK;
use crate::protocol::schema::{AnswerShape, Command, RecordShape};

/// `kebab-case` to `snake_case`.
fn snake(kebab: &str) -> String {
    kebab.replace('-', "_")
}

/// `kebab-case` to `UpperCamelCase`.
fn upper_camel(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// `kebab-case` to `lowerCamelCase` (JavaScript's names for WIT names).
fn lower_camel(kebab: &str) -> String {
    let upper = upper_camel(kebab);
    let mut chars = upper.chars();
    chars.next().map_or(String::new(), |c| {
        c.to_ascii_lowercase().to_string() + chars.as_str()
    })
}

/// (owning interface, type) of a record shape's name (`interface.record`).
fn owner_and_type(record: &RecordShape) -> (&str, &str) {
    record.name.split_once('.').unwrap_or(("", &record.name))
}

/// The values the templates are filled with, from the command's shapes.
pub(super) fn vars(command: &Command) -> Vec<(&'static str, String)> {
    let interface = command
        .spec
        .interface
        .trim_start_matches("openim:callback/")
        .trim_end_matches("@0.1.0");
    let world = if command.spec.name == KICK {
        "kick-plugin".to_owned()
    } else {
        format!("{interface}-plugin")
    };
    let module = snake(interface);
    let (request_owner, request) = owner_and_type(&command.request);
    // Go names a WIT type by the package of the interface that defines it.
    let go_package = |owner: &str| {
        format!(
            "openim_callback_{}",
            snake(if owner.is_empty() { interface } else { owner })
        )
    };
    let go_request = format!("{}.{}", go_package(request_owner), upper_camel(request));
    // Go refuses unused imports: exactly the packages the template names.
    let go_imports = |answer_package: Option<String>| {
        let mut packages: Vec<String> = ["openim_callback_types", "openim_helpers"]
            .map(String::from)
            .into_iter()
            .chain([go_package(request_owner)])
            .chain(answer_package)
            .collect();
        packages.sort();
        packages.dedup();
        packages
            .iter()
            .map(|p| format!("\t\"wit_component/{p}\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut vars = vec![
        ("command", command.spec.name.to_owned()),
        ("world_snake", snake(&world)),
        ("world", world),
        ("module", module.clone()),
        ("class", upper_camel(interface)),
        ("js_interface", lower_camel(interface)),
        ("request_type", upper_camel(request)),
        ("request_snake", snake(request)),
    ];
    match &command.answer {
        AnswerShape::Response => vars.extend([
            ("return_type", "openim_helpers::Response".to_owned()),
            ("return_snake", "response".to_owned()),
            ("rust_answer", "response".to_owned()),
            ("python_imports", String::new()),
            ("python_answer", "response".to_owned()),
            ("js_answer", "response".to_owned()),
            ("go_imports", go_imports(None)),
            ("go_request", go_request),
            (
                "go_return_type",
                "openim_callback_types.Response".to_owned(),
            ),
            ("go_answer", "response".to_owned()),
        ]),
        AnswerShape::WithChanges(changes) => {
            let (owner, name) = owner_and_type(changes);
            let fields = &changes.fields;
            let rust: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: None", snake(&f.wit)))
                .collect();
            let python: Vec<String> = fields
                .iter()
                .map(|f| format!("{}=None", snake(&f.wit)))
                .collect();
            let js: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: undefined", lower_camel(&f.wit)))
                .collect();
            let python_module = if owner == interface {
                format!("wit_world.exports.{module}")
            } else {
                format!("wit_world.imports.{}", snake(owner))
            };
            let changes_type = upper_camel(name);
            let answer_package = go_package("");
            vars.extend([
                ("go_imports", go_imports(Some(answer_package.clone()))),
                ("go_request", go_request),
                ("go_return_type", format!("{answer_package}.Answer")),
                (
                    "go_answer",
                    format!(
                        "{answer_package}.Answer{{\n\t\tResponse: response,\n\t\t// Every change OpenIM allows for this command, each an option; the zero\n\t\t// value leaves all unchanged. E.g. Changes.Field = witTypes.Some(value)\n\t\t// (witTypes \"go.bytecodealliance.org/pkg/wit/types\").\n\t}}"
                    ),
                ),
                ("return_type", "callback::Answer".to_owned()),
                ("return_snake", "answer".to_owned()),
                (
                    "rust_answer",
                    format!(
                        "// Every change OpenIM allows for this command; `None` leaves it unchanged.\n        \
                         callback::Answer {{\n            response,\n            changes: callback::{changes_type} {{\n                {},\n            }},\n        }}",
                        rust.join(",\n                ")
                    ),
                ),
                (
                    "python_imports",
                    format!(
                        "from wit_world.exports.{module} import Answer\nfrom {python_module} import {changes_type}\n"
                    ),
                ),
                (
                    "python_answer",
                    format!(
                        "Answer(response=response, changes={changes_type}(  # None leaves a field unchanged\n            {}))",
                        python.join(",\n            ")
                    ),
                ),
                (
                    "js_answer",
                    format!(
                        "{{\n      response,\n      // Every change OpenIM allows for this command; undefined leaves it unchanged.\n      changes: {{\n        {},\n      }},\n    }}",
                        js.join(",\n        ")
                    ),
                ),
            ]);
        }
    }
    vars
}
