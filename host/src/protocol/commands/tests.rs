use super::*;

#[test]
fn fifty_two_commands_fifty_three_keys_all_distinct() {
    assert_eq!(COMMANDS.len(), 52);
    let before = COMMANDS.iter().filter(|c| c.phase == Phase::Before).count();
    assert_eq!(before, 23);
    let mut names: Vec<_> = COMMANDS.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 52);
    let mut keys: Vec<_> = COMMANDS
        .iter()
        .flat_map(|c| c.webhook_keys.iter())
        .collect();
    assert_eq!(keys.len(), 53);
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 53);
    for command in COMMANDS {
        assert!(looks_like_command(command.name), "{}", command.name);
    }
}
