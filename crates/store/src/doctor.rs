//! Finds text a move from SQLite to PostgreSQL would trip over (`clinic doctor`).
//!
//! SQLite stores U+0000 inside text values; PostgreSQL's `text` refuses it, so one such row
//! stops a copy. Other C0 control characters (U+0001–U+001F except tab, LF and CR) and U+007F
//! move fine, but the API now refuses them at its edge, so they are reported as warnings.
//! Tables and columns are read from the database itself, so a new table is covered without
//! editing this module. Findings name rows by key only, never by value: values may be
//! patient data.

use diesel::sql_types::{BigInt, Integer, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};

use crate::{DbConnection, StoreError};

/// At most this many ids per finding: enough to start cleaning, short enough to read.
pub const MAX_IDS: usize = 10;

/// diesel's own bookkeeping: it holds migration versions, not data anyone typed.
const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextProblem {
    /// U+0000, which PostgreSQL cannot store: it blocks a move.
    Nul,
    /// U+0001–U+001F except tab, LF and CR, or U+007F, which the API refuses: a warning.
    Control,
}

/// The rows of one column whose text holds one kind of problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFinding {
    pub table: String,
    pub column: String,
    pub problem: TextProblem,
    pub rows: u64,
    /// The keys of the first rows in key order, at most [`MAX_IDS`]: the primary key's
    /// value, or `name=value` pairs joined by ", " for a composite key. When the column is
    /// itself part of the key, printing the key would print the value, so the row is named
    /// by `rowid=N` instead (or the part shows as `(withheld)` in a table without rowids).
    /// Control characters in keys are escaped (`\u{1}`).
    pub ids: Vec<String>,
}

/// What [`scan_text`] looked at and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextScan {
    pub tables: usize,
    pub columns: usize,
    pub findings: Vec<TextFinding>,
}

impl TextScan {
    /// True when some row holds U+0000, so a copy into PostgreSQL would fail.
    pub fn blocks_postgres(&self) -> bool {
        self.findings.iter().any(|f| f.problem == TextProblem::Nul)
    }
}

/// Scans every text value of every table (except SQLite's own and diesel's migration
/// table). Only values stored as text count: a BLOB may hold zero bytes, PostgreSQL's `bytea`
/// takes them. The scan reads one snapshot and writes nothing. On PostgreSQL there is
/// nothing to find, since it cannot hold U+0000, and the scan is empty.
pub fn scan_text(conn: &mut DbConnection) -> Result<TextScan, StoreError> {
    match conn {
        DbConnection::Sqlite(c) => {
            // Read only: a deferred transaction gives one snapshot (counts and ids agree)
            // and never takes the write lock.
            #[allow(clippy::disallowed_methods)]
            c.transaction(scan_sqlite)
        }
        DbConnection::Postgresql(_) => Ok(TextScan::default()),
    }
}

#[derive(QueryableByName)]
struct TableRow {
    #[diesel(sql_type = Text)]
    name: String,
    /// 1 for a `WITHOUT ROWID` table.
    #[diesel(sql_type = Integer)]
    wr: i32,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    name: String,
    /// The column's position in the primary key, from 1; 0 when not in it.
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    nul: i64,
    #[diesel(sql_type = BigInt)]
    control: i64,
}

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = Text)]
    key: String,
}

#[derive(QueryableByName)]
struct Encoding {
    #[diesel(sql_type = Text)]
    encoding: String,
}

fn scan_sqlite(conn: &mut SqliteConnection) -> Result<TextScan, StoreError> {
    // The byte tests below assume UTF-8, where the bytes 0x00–0x1F and 0x7F only ever
    // stand for those characters; in UTF-16 nearly every character has a zero byte.
    let encoding: Encoding = diesel::sql_query("SELECT encoding FROM pragma_encoding").get_result(conn)?;
    if encoding.encoding != "UTF-8" {
        return Err(StoreError::Corrupt(format!(
            "the database's text encoding is {}; the text scan reads UTF-8 databases only",
            encoding.encoding
        )));
    }
    // pragma_table_list (unlike sqlite_master) says which tables have no rowid, and leaves
    // out views, virtual tables and their shadow tables.
    let tables: Vec<TableRow> = diesel::sql_query(
        "SELECT name, wr FROM pragma_table_list \
         WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> ? \
         ORDER BY name",
    )
    .bind::<Text, _>(MIGRATIONS_TABLE)
    .load(conn)?;
    let mut scan = TextScan {
        tables: tables.len(),
        ..TextScan::default()
    };
    for table in &tables {
        let mut columns: Vec<ColumnRow> = diesel::sql_query("SELECT name, pk FROM pragma_table_info(?) ORDER BY cid")
            .bind::<Text, _>(&table.name)
            .load(conn)?;
        scan.columns += columns.len();
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        columns.sort_by_key(|c| c.pk);
        let primary_key: Vec<&str> = columns.iter().filter(|c| c.pk > 0).map(|c| c.name.as_str()).collect();
        for column in &names {
            scan_column(conn, table, column, &primary_key, &names, &mut scan.findings)?;
        }
    }
    Ok(scan)
}

fn scan_column(
    conn: &mut SqliteConnection,
    table: &TableRow,
    column: &str,
    primary_key: &[&str],
    all_columns: &[String],
    findings: &mut Vec<TextFinding>,
) -> Result<(), StoreError> {
    let from = format!(
        "FROM {} WHERE typeof({}) = 'text'",
        quote_ident(&table.name),
        quote_ident(column)
    );
    // Bytewise: SQLite's text functions may stop at the first NUL.
    let value = format!("CAST({} AS BLOB)", quote_ident(column));
    let nul = holds_nul(&value);
    let control = holds_control(&value);
    let counts: Counts = diesel::sql_query(format!(
        "SELECT count(*) FILTER (WHERE {nul}) AS nul, count(*) FILTER (WHERE {control}) AS control {from}"
    ))
    .get_result(conn)?;
    let key = Key::for_column(column, primary_key, table.wr == 0, all_columns);
    for (problem, rows, predicate) in [
        (TextProblem::Nul, counts.nul, &nul),
        (TextProblem::Control, counts.control, &control),
    ] {
        if rows == 0 {
            continue;
        }
        let keys: Vec<KeyRow> = diesel::sql_query(format!(
            "SELECT {} AS key {from} AND ({predicate}) ORDER BY {} LIMIT ?",
            key.select_expr(),
            key.order_by()
        ))
        .bind::<BigInt, _>(MAX_IDS as i64)
        .load(conn)?;
        findings.push(TextFinding {
            table: table.name.clone(),
            column: column.to_owned(),
            problem,
            rows: u64::try_from(rows).unwrap_or_default(),
            ids: keys.iter().map(|k| key.render(&k.key)).collect(),
        });
    }
    Ok(())
}

/// A SQL identifier, quoted: names come from the database and may hold anything.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn holds_nul(value: &str) -> String {
    format!("instr({value}, x'00') > 0")
}

/// The characters the API refuses besides U+0000: C0 controls except tab, LF and CR, and DEL.
fn control_bytes() -> impl Iterator<Item = u8> {
    (0x01..=0x1Fu8)
        .filter(|b| !matches!(b, b'\t' | b'\n' | b'\r'))
        .chain([0x7F])
}

fn holds_control(value: &str) -> String {
    control_bytes()
        .map(|b| format!("instr({value}, x'{b:02x}') > 0"))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// How the rows of one column are named in a finding.
struct Key {
    parts: Vec<KeyPart>,
    /// A lone primary key column prints as its bare value.
    bare: bool,
}

struct KeyPart {
    label: String,
    /// A quoted column name, or a rowid alias.
    sql: String,
    /// The scanned column itself: shown as `(withheld)`, never read.
    withheld: bool,
}

impl Key {
    fn for_column(column: &str, primary_key: &[&str], has_rowid: bool, all_columns: &[String]) -> Self {
        let in_key = primary_key.contains(&column);
        if !primary_key.is_empty() && !in_key {
            return Key {
                bare: primary_key.len() == 1,
                parts: primary_key
                    .iter()
                    .map(|&name| KeyPart {
                        label: name.to_owned(),
                        sql: quote_ident(name),
                        withheld: false,
                    })
                    .collect(),
            };
        }
        // A real column may shadow a rowid alias; SQLite offers three names for it.
        let alias = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|alias| !all_columns.iter().any(|c| c.eq_ignore_ascii_case(alias)));
        if let (true, Some(alias)) = (has_rowid, alias) {
            return Key {
                bare: false,
                parts: vec![KeyPart {
                    label: "rowid".to_owned(),
                    sql: alias.to_owned(),
                    withheld: false,
                }],
            };
        }
        let names: Vec<&str> = if primary_key.is_empty() {
            vec![column]
        } else {
            primary_key.to_vec()
        };
        Key {
            bare: false,
            parts: names
                .into_iter()
                .map(|name| KeyPart {
                    label: name.to_owned(),
                    sql: quote_ident(name),
                    withheld: name == column,
                })
                .collect(),
        }
    }

    /// One text of hex digits per part, joined by ',', so no key value (which may hold
    /// NUL or commas) reaches Rust as text.
    fn select_expr(&self) -> String {
        self.parts
            .iter()
            .map(|p| {
                if p.withheld {
                    "'w'".to_owned()
                } else {
                    format!(
                        "CASE WHEN {0} IS NULL THEN 'n' ELSE 'x' || hex(CAST({0} AS BLOB)) END",
                        p.sql
                    )
                }
            })
            .collect::<Vec<_>>()
            .join(" || ',' || ")
    }

    fn order_by(&self) -> String {
        self.parts.iter().map(|p| p.sql.as_str()).collect::<Vec<_>>().join(", ")
    }

    fn render(&self, selected: &str) -> String {
        let values: Vec<String> = selected.split(',').map(render_part).collect();
        if self.bare {
            return values.concat();
        }
        self.parts
            .iter()
            .zip(values)
            .map(|(p, v)| format!("{}={v}", p.label))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn render_part(encoded: &str) -> String {
    let Some(hex) = encoded.strip_prefix('x') else {
        return if encoded == "n" { "NULL" } else { "(withheld)" }.to_owned();
    };
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    // A key with control characters must not drive the operator's terminal.
    String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_set_is_c0_without_tab_lf_cr_plus_del() {
        let bytes: Vec<u8> = control_bytes().collect();
        assert_eq!(bytes.len(), 29);
        assert!(!bytes.contains(&0) && !bytes.contains(&b'\t') && !bytes.contains(&b'\n') && !bytes.contains(&b'\r'));
        assert!(bytes.contains(&0x01) && bytes.contains(&0x1F) && bytes.contains(&0x7F));
    }

    #[test]
    fn keys_render_escaped_and_never_show_a_withheld_part() {
        let key = Key::for_column("tag", &["article_id", "tag"], false, &[]);
        assert_eq!(key.render("x6131,w"), "article_id=a1, tag=(withheld)");
        let bare = Key::for_column("notes", &["id"], true, &[]);
        assert_eq!(bare.render("x6101"), "a\\u{1}");
        assert_eq!(bare.render("n"), "NULL");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
