//! Patient-education content: article states and the values an article is made of.

use std::fmt;
use std::str::FromStr;

use crate::FieldError;

/// Where an article is in its life: only `Published` articles are public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ArticleStatus {
    Draft,
    Published,
    Archived,
}

/// A requested change of status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArticleTransition {
    Publish,
    Unpublish,
    Archive,
}

impl ArticleStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ArticleStatus::Draft => "draft",
            ArticleStatus::Published => "published",
            ArticleStatus::Archived => "archived",
        }
    }

    /// The status after `transition`, or `None` when it is not allowed from here:
    /// publish from draft or archived; unpublish from published; archive from draft or published.
    pub fn after(self, transition: ArticleTransition) -> Option<ArticleStatus> {
        use ArticleStatus::*;
        use ArticleTransition::*;
        match (self, transition) {
            (Draft | Archived, Publish) => Some(Published),
            (Published, Unpublish) => Some(Draft),
            (Draft | Published, Archive) => Some(Archived),
            _ => None,
        }
    }
}

impl fmt::Display for ArticleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ArticleStatus {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "draft" => Ok(Self::Draft),
            "published" => Ok(Self::Published),
            "archived" => Ok(Self::Archived),
            _ => Err(FieldError::new(
                "status",
                "invalid_status",
                "expected draft, published or archived",
            )),
        }
    }
}

/// A URL slug: 1–100 characters of `a-z`, `0-9` and single hyphens, no hyphen at either end.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub const MAX_LEN: usize = 100;

    /// Exactly as given: no trimming, so the API's pattern and the server agree.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let s = input;
        let valid = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
            && !s.contains("--");
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(FieldError::new(
                "slug",
                "invalid_slug",
                "a slug is 1 to 100 characters of a-z, 0-9 and single hyphens, e.g. living-with-a-pump",
            ))
        }
    }

    /// Derives a slug from a title (transliterating accents, `slug` crate), cut at a word
    /// boundary to fit.
    pub fn from_title(title: &str) -> Result<Self, FieldError> {
        let mut s = slug::slugify(title);
        if s.len() > Self::MAX_LEN {
            s.truncate(Self::MAX_LEN);
            if let Some(cut) = s.rfind('-') {
                s.truncate(cut);
            }
        }
        Self::parse(&s).map_err(|_| {
            FieldError::new(
                "slug",
                "cannot_derive_slug",
                "the title has no letters or digits to make a slug from",
            )
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Trimmed printable text of bounded length (titles, names, summaries).
fn bounded_text(input: &str, field: &str, max_chars: usize) -> Result<String, FieldError> {
    let t = input.trim();
    if t.is_empty() {
        return Err(FieldError::new(field, "required", format!("{field} must not be empty")));
    }
    if t.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("{field} is longer than {max_chars} characters"),
        ));
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(FieldError::new(
            field,
            "invalid_characters",
            format!("{field} contains control characters"),
        ));
    }
    Ok(t.to_owned())
}

pub fn parse_title(input: &str) -> Result<String, FieldError> {
    bounded_text(input, "title", 200).and_then(|t| {
        if t.contains('\n') {
            Err(FieldError::new("title", "invalid_characters", "title must be one line"))
        } else {
            Ok(t)
        }
    })
}

pub fn parse_summary(input: &str) -> Result<String, FieldError> {
    bounded_text(input, "summary", 500)
}

pub fn parse_author(input: &str) -> Result<String, FieldError> {
    bounded_text(input, "author", 100)
}

pub fn parse_condition_name(input: &str) -> Result<String, FieldError> {
    bounded_text(input, "name", 150)
}

/// Markdown source of an article body: non-empty, at most 50,000 characters (so that an
/// article fits the default 64 KiB request limit).
pub fn parse_body(input: &str) -> Result<String, FieldError> {
    if input.trim().is_empty() {
        return Err(FieldError::new(
            "body_markdown",
            "required",
            "body_markdown must not be empty",
        ));
    }
    if input.chars().count() > 50_000 {
        return Err(FieldError::new(
            "body_markdown",
            "too_long",
            "body_markdown is longer than 50000 characters",
        ));
    }
    if input.contains('\0') {
        return Err(FieldError::new(
            "body_markdown",
            "invalid_characters",
            "body_markdown contains NUL",
        ));
    }
    Ok(input.to_owned())
}

/// Tags: each a slug of at most 40 characters, at most 20, duplicates removed, order kept.
pub fn parse_tags(input: &[String]) -> Result<Vec<String>, FieldError> {
    if input.len() > 20 {
        return Err(FieldError::new("tags", "too_many", "at most 20 tags"));
    }
    let mut tags: Vec<String> = Vec::new();
    for (i, raw) in input.iter().enumerate() {
        let tag = Slug::parse(&raw.to_lowercase())
            .ok()
            .filter(|t| t.as_str().len() <= 40)
            .ok_or_else(|| {
                FieldError::new(
                    format!("tags[{i}]"),
                    "invalid_tag",
                    "a tag is 1 to 40 characters of a-z, 0-9 and single hyphens",
                )
            })?;
        if !tags.iter().any(|t| t == tag.as_str()) {
            tags.push(tag.0);
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ArticleStatus::*;
    use ArticleTransition::*;

    #[test]
    fn transitions_follow_the_state_machine() {
        assert_eq!(Draft.after(Publish), Some(Published));
        assert_eq!(Archived.after(Publish), Some(Published));
        assert_eq!(Published.after(Unpublish), Some(Draft));
        assert_eq!(Draft.after(Archive), Some(Archived));
        assert_eq!(Published.after(Archive), Some(Archived));
        assert_eq!(Published.after(Publish), None);
        assert_eq!(Draft.after(Unpublish), None);
        assert_eq!(Archived.after(Archive), None);
        assert_eq!(Archived.after(Unpublish), None);
    }

    #[test]
    fn slugs_come_from_titles_and_are_validated() {
        assert_eq!(
            Slug::from_title("Living with a pump: Your first refill")
                .expect("slug")
                .as_str(),
            "living-with-a-pump-your-first-refill"
        );
        assert_eq!(
            Slug::from_title("Doença & Dor Crônica").expect("slug").as_str(),
            "doenca-dor-cronica"
        );
        assert!(Slug::from_title("!!!").is_err());
        let long = Slug::from_title(&"word ".repeat(40)).expect("slug");
        assert!(long.as_str().len() <= 100 && !long.as_str().ends_with('-'));
        for bad in ["", "Upper", "two--hyphens", "-lead", "trail-", "sp ace", "ünï"] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_fields_are_bounded() {
        assert_eq!(parse_title("  A title ").expect("ok"), "A title");
        assert_eq!(parse_title("").expect_err("empty").code, "required");
        assert_eq!(parse_title(&"t".repeat(201)).expect_err("long").code, "too_long");
        assert!(parse_title("two\nlines").is_err());
        assert!(parse_summary("two\nlines are fine").is_ok());
        assert!(parse_body("   ").is_err());
        assert!(parse_body("# Hello").is_ok());
    }

    #[test]
    fn tags_are_normalised_and_deduplicated() {
        let tags = parse_tags(&["Refills".into(), "refills".into(), "pump-care".into()]).expect("tags");
        assert_eq!(tags, ["refills", "pump-care"]);
        assert_eq!(parse_tags(&["no spaces".into()]).expect_err("bad").field, "tags[0]");
        assert!(parse_tags(&vec!["t".to_string(); 21]).is_err());
    }
}
