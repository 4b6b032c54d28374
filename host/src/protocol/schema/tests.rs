use super::*;

#[test]
fn the_docs_list_every_command_as_the_host_knows_it() {
    let readme = include_str!("../../../../docs/writing-plugins.md");
    let table = Catalog::get().markdown_table();
    assert!(
        readme.contains(&table),
        "docs/writing-plugins.md lacks the table of commands; it should have:\n{table}"
    );
}

#[test]
fn every_command_has_shapes_and_names_follow_openim() {
    let catalog = Catalog::get();
    assert_eq!(catalog.commands().len(), 52);
    let kick = catalog.command("callbackAfterKickGroupCommand").unwrap();
    let names: Vec<&str> = kick
        .request
        .fields
        .iter()
        .map(|f| f.json.as_str())
        .collect();
    assert_eq!(
        names,
        ["callbackCommand", "groupID", "kickedUserIDs", "reason"]
    );
    let modify = catalog.command("callbackBeforeMsgModifyCommand").unwrap();
    let changes = modify.changes().unwrap();
    assert_eq!(changes.field("face-url").unwrap().1.json, "senderFaceURL");
    // Withheld, though OpenIM reads it: it would wipe the message's other options.
    assert!(changes.field("options").is_none());
    assert!(
        modify
            .spec
            .rules
            .withheld
            .iter()
            .any(|(f, _)| *f == "options")
    );
    assert!(modify.request.fields[0].flatten);
    let with_changes = catalog
        .commands()
        .iter()
        .filter(|c| c.changes().is_some())
        .count();
    assert_eq!(with_changes, 15);
    assert_eq!(json_name("x.y.user-id-list", "user-id-list"), "userIDList");
    assert_eq!(json_name("x.y.face-url", "face-url"), "faceURL");
    assert_eq!(json_name("x.y.nick-name", "nick-name"), "nickName");
}
