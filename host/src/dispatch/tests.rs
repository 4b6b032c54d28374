use super::*;

#[test]
fn a_command_is_first_seen_once() {
    let firsts = FirstTimes::default();
    assert!(firsts.first("callbackAfterKickGroupCommand"));
    assert!(!firsts.first("callbackAfterKickGroupCommand"));
    assert!(firsts.first("callbackBeforeSendSingleMsgCommand"));
    assert!(!firsts.first("callbackBeforeSendSingleMsgCommand"));
}
