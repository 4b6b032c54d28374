//! The moderation rule, stated once. The moderation plugin (compiled to Wasm) and the native
//! baseline of the benchmark both use it, so that they do exactly the same work.
//!
//! - A text containing a blocked phrase (`blocked-phrases.txt`) is refused.
//! - Banned words (`banned-words.txt`) are masked with one `*` per character.
//!
//! ASCII letters are compared without case; other characters exactly.

const BLOCKED_PHRASES: &str = include_str!("../blocked-phrases.txt");
const BANNED_WORDS: &str = include_str!("../banned-words.txt");

/// The non-comment lines of a list.
fn entries(list: &'static str) -> impl Iterator<Item = &'static str> {
    list.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// Byte ranges of `needle` in `haystack`, ASCII letters compared without case.
fn find_all(haystack: &str, needle: &str) -> Vec<(usize, usize)> {
    let (text, word) = (haystack.as_bytes(), needle.as_bytes());
    let mut found = Vec::new();
    let mut at = 0;
    while at + word.len() <= text.len() {
        if haystack.is_char_boundary(at)
            && haystack.is_char_boundary(at + word.len())
            && text[at..at + word.len()].eq_ignore_ascii_case(word)
        {
            found.push((at, at + word.len()));
            at += word.len();
        } else {
            at += 1;
        }
    }
    found
}

/// The first blocked phrase `text` contains.
pub fn blocked_phrase(text: &str) -> Option<&'static str> {
    entries(BLOCKED_PHRASES).find(|phrase| !find_all(text, phrase).is_empty())
}

/// The first blocked phrase `text` contains in disguise: spaced out, punctuated or with digits
/// for letters ("f r e e  b 1 t c 0 i n"). Slower than [`blocked_phrase`], and more often wrong:
/// the after-send moderation runs it, where a mistake is a revoked message, not a refused one.
pub fn disguised_phrase(text: &str) -> Option<&'static str> {
    let plain = skeleton(text);
    entries(BLOCKED_PHRASES).find(|phrase| {
        let phrase = skeleton(phrase);
        !phrase.is_empty() && plain.contains(&phrase)
    })
}

/// Lower-case letters and digits read as letters, with everything else left out.
fn skeleton(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c.to_ascii_lowercase() {
            '0' => Some('o'),
            '1' | '!' | '|' => Some('i'),
            '3' => Some('e'),
            '4' | '@' => Some('a'),
            '5' | '$' => Some('s'),
            '7' => Some('t'),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// `text` with every banned word masked, if it has any.
pub fn mask(text: &str) -> Option<String> {
    let mut ranges: Vec<(usize, usize)> = entries(BANNED_WORDS)
        .flat_map(|word| find_all(text, word))
        .collect();
    if ranges.is_empty() {
        return None;
    }
    ranges.sort_unstable();
    let mut masked = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in ranges {
        if start < at {
            continue; // overlaps a word already masked
        }
        masked.push_str(&text[at..start]);
        masked.extend(text[start..end].chars().map(|_| '*'));
        at = end;
    }
    masked.push_str(&text[at..]);
    Some(masked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_and_masks() {
        assert_eq!(blocked_phrase("Get FREE Bitcoin now"), Some("free bitcoin"));
        assert_eq!(blocked_phrase("free coffee"), None);
        assert_eq!(
            mask("darn it, HECK! 你是坏蛋").as_deref(),
            Some("**** it, ****! 你是**")
        );
        assert_eq!(mask("hello"), None);
    }
}
