use super::*;

#[test]
fn routes_on_the_last_segment_under_any_prefix() {
    let kick = "callbackAfterKickGroupCommand";
    assert_eq!(
        last_segment("/callbackExample/callbackAfterKickGroupCommand"),
        kick
    );
    assert_eq!(last_segment("/a/b/callbackAfterKickGroupCommand/"), kick);
    assert_eq!(last_segment("/callbackAfterKickGroupCommand"), kick);
    assert_eq!(last_segment("/"), "");
}
