//! Which characters free text may hold, wherever it comes from (JSON, forms, query strings,
//! paths, headers).
//!
//! PostgreSQL's `text` cannot hold U+0000, and SQLite stores it without complaint, so a NUL
//! that got past the edge would answer 500 on one database and be kept on the other. The
//! other C0 control characters and DEL have no place in names, notes or articles either:
//! they are invisible, break terminals and CSV exports, and are a favourite of injection
//! attempts. So every door refuses them before anything is parsed further. Tab, line feed
//! and carriage return are allowed only in fields documented as multi-line (Markdown,
//! notes). Lone surrogates cannot reach this code at all: Rust strings are valid UTF-8,
//! and the doors refuse input that does not decode.

use crate::FieldError;

/// The code of the field error for text with a forbidden character.
pub const INVALID_CHARACTERS: &str = "invalid_characters";

/// Whether a text may break lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One line: every C0 control character and DEL is refused.
    Single,
    /// Tab, line feed and carriage return are allowed; every other control character is not.
    Multi,
}

/// The first character of `text` that it may not hold, if any.
pub fn forbidden_char(text: &str, lines: Lines) -> Option<char> {
    text.chars().find(|&c| is_forbidden(c, lines))
}

/// Whether `c` is refused in a text of the given kind.
pub fn is_forbidden(c: char, lines: Lines) -> bool {
    let control = c <= '\u{1f}' || c == '\u{7f}';
    control && !(lines == Lines::Multi && matches!(c, '\t' | '\n' | '\r'))
}

/// Checks `text`, naming `field` in the error.
pub fn check(field: &str, text: &str, lines: Lines) -> Result<(), FieldError> {
    match forbidden_char(text, lines) {
        None => Ok(()),
        Some(c) => Err(invalid_characters(field, c)),
    }
}

/// The field error for a forbidden character `c` (named by its code point, never shown).
pub fn invalid_characters(field: &str, c: char) -> FieldError {
    FieldError::new(
        field,
        INVALID_CHARACTERS,
        format!(
            "contains the control character U+{:04X}; {}",
            c as u32,
            if matches!(c, '\t' | '\n' | '\r') {
                "this field is one line"
            } else {
                "text may not hold control characters"
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_and_line_breaks_only_where_allowed() {
        for c in ['\0', '\u{1}', '\u{1b}', '\u{1f}', '\u{7f}'] {
            let text = format!("a{c}b");
            assert_eq!(forbidden_char(&text, Lines::Single), Some(c));
            assert_eq!(forbidden_char(&text, Lines::Multi), Some(c));
        }
        for c in ['\t', '\n', '\r'] {
            let text = format!("a{c}b");
            assert_eq!(forbidden_char(&text, Lines::Single), Some(c));
            assert_eq!(forbidden_char(&text, Lines::Multi), None);
        }
        // Printable text in any script, and the C1 range (which decodes from no keyboard but
        // PostgreSQL stores), are left to the field's own rules.
        for text in ["Zoë O'Brien-Łukasz", "日本語", "emoji 🙂", " ", "", "\u{85}\u{a0}"] {
            assert_eq!(forbidden_char(text, Lines::Single), None, "{text:?}");
        }
    }

    #[test]
    fn the_error_names_the_field_and_the_code_point_not_the_text() {
        let e = check("notes", "secret\0", Lines::Multi).expect_err("NUL is refused");
        assert_eq!((e.field.as_str(), e.code.as_str()), ("notes", INVALID_CHARACTERS));
        assert!(
            e.message.contains("U+0000") && !e.message.contains("secret"),
            "{}",
            e.message
        );
    }
}
