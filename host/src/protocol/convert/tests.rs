use super::*;
use crate::protocol::schema::Catalog;

#[test]
fn unknown_fields_are_parsed_like_the_precise_path_does() {
    // Found by the fuzzer: skipped unparsed, a number no float can hold was accepted by the
    // fast path and refused by the precise one.
    let command = Catalog::get()
        .command("callbackAfterSetFriendRemarkCommand")
        .unwrap();
    let body = r#"{"callbackCommand":"c","ownerUserID":"a","friendUserID":"b","remark":"r","x":[{"y":1e99999}]}"#;
    assert!(decode_body(&command.request, body.as_bytes()).is_err());
    assert!(serde_json::from_str::<Value>(body).is_err());
    let fine = r#"{"callbackCommand":"c","ownerUserID":"a","friendUserID":"b","remark":"r","x":[{"y":1e9,"z":null}]}"#;
    assert!(decode_body(&command.request, fine.as_bytes()).is_ok());
}

#[test]
fn values_of_another_contract_do_not_conform() {
    let command = Catalog::get()
        .command("callbackBeforeMembersJoinGroupCommand")
        .unwrap();
    let changes = command.changes().unwrap();
    let good = Val::Record(vec![("member-callback-list".into(), Val::Option(None))]);
    assert!(conforms_record(changes, &good));
    // The same field with another type, another name, or a field too many: refused.
    for bad in [
        Val::Record(vec![(
            "member-callback-list".into(),
            Val::Option(Some(Box::new(Val::String("x".into())))),
        )]),
        Val::Record(vec![("members".into(), Val::Option(None))]),
        Val::Record(vec![
            ("member-callback-list".into(), Val::Option(None)),
            ("extra".into(), Val::Bool(true)),
        ]),
        Val::String("not a record".into()),
    ] {
        assert!(!conforms_record(changes, &bad), "{bad:?}");
    }
}

#[test]
fn the_fast_decoder_agrees_with_the_precise_one_on_every_fixture() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/requests");
    for command in Catalog::get().commands() {
        let body = std::fs::read(dir.join(format!("{}.json", command.spec.name))).unwrap();
        let object: Value = serde_json::from_slice(&body).unwrap();
        let precise = decode_record(&command.request, object.as_object().unwrap(), "").unwrap();
        let fast = decode_body(&command.request, &body).unwrap();
        assert_eq!(fast, precise, "{}", command.spec.name);
        // And both refuse a body without its fields.
        let bare = format!("{{\"callbackCommand\":\"{}\"}}", command.spec.name);
        assert!(
            decode_body(&command.request, bare.as_bytes()).is_err(),
            "{}",
            command.spec.name
        );
    }
}

#[test]
fn flattened_structs_nulls_and_round_trip() {
    let command = Catalog::get()
        .command("callbackBeforeCreateGroupCommand")
        .unwrap();
    let body: Value = serde_json::from_str(
        r#"{"operationID":"op","callbackCommand":"callbackBeforeCreateGroupCommand","groupID":"g1","groupName":"n",
        "notification":"","introduction":"","faceURL":"","ownerUserID":"o","createTime":1,"memberCount":0,"ex":"",
        "status":0,"creatorUserID":"o","groupType":2,"needVerification":0,"lookMemberInfo":0,"applyMemberFriend":0,
        "notificationUpdateTime":0,"notificationUserID":"","initMemberList":null}"#,
    )
    .unwrap();
    let value = decode_record(&command.request, body.as_object().unwrap(), "").unwrap();
    let Val::Record(fields) = &value else {
        panic!()
    };
    assert!(matches!(&fields[2].1, Val::Option(Some(_))));
    assert_eq!(fields[3].1, Val::List(vec![]));
    let mut back = Map::new();
    encode_record(&command.request, &value, &mut back);
    assert_eq!(back["groupName"], "n");
    assert_eq!(back["initMemberList"], Value::Array(vec![]));

    // Without the embedded group, its fields are simply absent: `none`.
    let bare: Value = serde_json::from_str(
        r#"{"operationID":"op","callbackCommand":"callbackBeforeCreateGroupCommand","initMemberList":[{"userID":"u","roleLevel":100}]}"#,
    )
    .unwrap();
    let value = decode_record(&command.request, bare.as_object().unwrap(), "").unwrap();
    let Val::Record(fields) = &value else {
        panic!()
    };
    assert_eq!(fields[2].1, Val::Option(None));

    let wrong: Value = serde_json::from_str(
        r#"{"operationID":"op","callbackCommand":"c","initMemberList":[{"userID":"u","roleLevel":"x"}]}"#,
    )
    .unwrap();
    let err = decode_record(&command.request, wrong.as_object().unwrap(), "").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid type: string \"x\", expected an integer at initMemberList[0].roleLevel"
    );
}

#[test]
fn the_sample_request_of_every_command_conforms_and_reads_back_from_its_json() {
    for command in Catalog::get().commands() {
        let sample = sample_record(&command.request);
        let name = command.spec.name;
        assert!(conforms_record(&command.request, &sample), "{name}");
        // What a JSON plugin's warm-up call is given decodes to the typed one's.
        let mut object = Map::new();
        object.insert("callbackCommand".into(), name.into());
        encode_record(&command.request, &sample, &mut object);
        let body = Value::Object(object).to_string();
        let decoded = decode_body(&command.request, body.as_bytes()).expect(name);
        assert_eq!(format!("{decoded:?}"), format!("{sample:?}"), "{name}");
    }
}
