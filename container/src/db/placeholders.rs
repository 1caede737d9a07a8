//! `$N` placeholders on MySQL/MariaDB, which only know `?`.
//!
//! Apps write `$1`, `$2`, … on every backend. For MySQL each `$N` outside
//! string literals, quoted identifiers and comments becomes a `?`, and the
//! bound values are reordered (and repeated) to match: `$2 … $1 … $2` is
//! three `?` taking values 2, 1 and 2.
//!
//! The lexer follows MySQL's default `sql_mode`: `'…'` and `"…"` are
//! strings with `''`/`""` and backslash escapes, `` `…` `` is an
//! identifier with ```` `` ```` escapes, comments are `#…`, `-- …` (the
//! dashes followed by a space or a control character, as MySQL requires)
//! and `/* … */`. A `$` right after an identifier character is part of
//! the identifier (`a$1`), as on PostgreSQL. A `?` of the app's own
//! outside literals is refused: placeholders are `$N` everywhere.
//!
//! Nothing is cached: the rewrite is one pass over the bytes, about what
//! hashing the text for a cache lookup would cost, and sqlx already caches
//! the prepared statement per connection by the rewritten text.

/// A statement rewritten for MySQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The SQL with `?` placeholders.
    pub sql: String,
    /// For each `?` in order, the index (from 0) of the bound value it takes.
    pub order: Vec<usize>,
}

/// Rewrites the `$N` placeholders of `sql` into `?`; `None` when it has none
/// (the SQL runs as it is, with no values).
///
/// # Errors
/// A message for `$0`, a number too large, or a `?` placeholder of the app's own.
pub fn rewrite(sql: &str) -> Result<Option<Rewritten>, String> {
    let bytes = sql.as_bytes();
    if !bytes.iter().any(|&b| b == b'$' || b == b'?') {
        return Ok(None);
    }
    let (mut out, mut order, mut copied, mut i) = (String::with_capacity(sql.len()), Vec::new(), 0, 0);
    while i < bytes.len() {
        i = match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => skip_quoted(bytes, i, quote),
            b'#' => skip_line(bytes, i),
            b'-' if is_dash_comment(bytes, i) => skip_line(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => skip_block(bytes, i),
            b'?' => return Err("write placeholders as $1, $2, … on every backend, not ?".to_owned()),
            b'$' if is_placeholder(bytes, i) => {
                let end = i + 1 + bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
                let number: usize = sql[i + 1..end]
                    .parse()
                    .map_err(|_| format!("placeholder {} is out of range", &sql[i..end]))?;
                let index = number
                    .checked_sub(1)
                    .ok_or_else(|| "placeholders start at $1, not $0".to_owned())?;
                out.push_str(&sql[copied..i]);
                out.push('?');
                order.push(index);
                copied = end;
                end
            }
            _ => i + 1,
        };
    }
    if order.is_empty() {
        return Ok(None);
    }
    out.push_str(&sql[copied..]);
    Ok(Some(Rewritten { sql: out, order }))
}

/// `$` followed by a digit, and not inside an identifier (`a$1`).
fn is_placeholder(bytes: &[u8], at: usize) -> bool {
    let digit_follows = bytes.get(at + 1).is_some_and(u8::is_ascii_digit);
    let in_identifier = at > 0 && {
        let before = bytes[at - 1];
        before.is_ascii_alphanumeric() || matches!(before, b'_' | b'$') || !before.is_ascii()
    };
    digit_follows && !in_identifier
}

/// After the literal or quoted identifier that starts at `start`; the end
/// of the text if it is not closed (the server reports that).
fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote != b'`' => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `--` followed by whitespace, a control character or the end.
fn is_dash_comment(bytes: &[u8], at: usize) -> bool {
    bytes.get(at + 1) == Some(&b'-') && bytes.get(at + 2).is_none_or(|&b| b <= b' ')
}

fn skip_line(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |n| start + n + 1)
}

fn skip_block(bytes: &[u8], start: usize) -> usize {
    bytes[start + 2..]
        .windows(2)
        .position(|w| w == b"*/")
        .map_or(bytes.len(), |n| start + 2 + n + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> (String, Vec<usize>) {
        let r = rewrite(sql).unwrap().expect("placeholders");
        (r.sql, r.order)
    }

    fn unchanged(sql: &str) {
        assert_eq!(rewrite(sql).unwrap(), None, "{sql}");
    }

    #[test]
    fn rewrites_in_order() {
        assert_eq!(
            ok("INSERT INTO t (a, b) VALUES ($1, $2)"),
            ("INSERT INTO t (a, b) VALUES (?, ?)".into(), vec![0, 1])
        );
        assert_eq!(ok("SELECT $1"), ("SELECT ?".into(), vec![0]));
        assert_eq!(ok("$1"), ("?".into(), vec![0]));
    }

    #[test]
    fn reorders_and_repeats() {
        assert_eq!(
            ok("SELECT * FROM t WHERE a = $2 AND b = $1 OR c = $2"),
            ("SELECT * FROM t WHERE a = ? AND b = ? OR c = ?".into(), vec![1, 0, 1])
        );
    }

    #[test]
    fn reads_every_digit() {
        let sql = (1..=11).map(|n| format!("${n}")).collect::<Vec<_>>().join(",");
        let (out, order) = ok(&sql);
        assert_eq!(out, ["?"; 11].join(","));
        assert_eq!(order, (0..11).collect::<Vec<_>>());
        assert_eq!(ok("x=$10+$1"), ("x=?+?".into(), vec![9, 0]));
        assert_eq!(ok("($1)"), ("(?)".into(), vec![0]));
    }

    #[test]
    fn leaves_sql_without_placeholders_alone() {
        unchanged("SELECT 1");
        unchanged("SELECT '$1', \"$2\", `$3`");
        unchanged("SELECT price$ FROM t");
        unchanged("SELECT 1 -- $1\n");
    }

    #[test]
    fn skips_string_literals() {
        assert_eq!(
            ok("SELECT '$1', $1, \"$2\""),
            ("SELECT '$1', ?, \"$2\"".into(), vec![0])
        );
        assert_eq!(ok("SELECT 'it''s $1', $2"), ("SELECT 'it''s $1', ?".into(), vec![1]));
        assert_eq!(ok(r"SELECT 'a\'$1', $2"), (r"SELECT 'a\'$1', ?".into(), vec![1]));
        assert_eq!(ok(r"SELECT 'a\\', $1"), (r"SELECT 'a\\', ?".into(), vec![0]));
        assert_eq!(
            ok(r#"SELECT "say ""$1"" \" $1", $3"#),
            (r#"SELECT "say ""$1"" \" $1", ?"#.into(), vec![2])
        );
        assert_eq!(ok("SELECT 'é$1ü', $1"), ("SELECT 'é$1ü', ?".into(), vec![0]));
    }

    #[test]
    fn skips_quoted_identifiers() {
        assert_eq!(
            ok("SELECT `col$1`, `a``$1`, $1 FROM `t`"),
            ("SELECT `col$1`, `a``$1`, ? FROM `t`".into(), vec![0])
        );
        // No backslash escapes in identifiers: the backtick closes it.
        assert_eq!(ok(r"SELECT `a\`, $1"), (r"SELECT `a\`, ?".into(), vec![0]));
    }

    #[test]
    fn skips_comments() {
        assert_eq!(
            ok("SELECT $1 -- not $2\n, $3"),
            ("SELECT ? -- not $2\n, ?".into(), vec![0, 2])
        );
        assert_eq!(ok("SELECT $1 # not $2\n"), ("SELECT ? # not $2\n".into(), vec![0]));
        assert_eq!(
            ok("SELECT /* $1 ' */ $2 /* $3"),
            ("SELECT /* $1 ' */ ? /* $3".into(), vec![1])
        );
        assert_eq!(ok("SELECT $1 --\t$2"), ("SELECT ? --\t$2".into(), vec![0]));
        assert_eq!(ok("SELECT $1 --"), ("SELECT ? --".into(), vec![0]));
    }

    #[test]
    fn double_dash_without_space_is_arithmetic() {
        assert_eq!(ok("SELECT $1--$2"), ("SELECT ?--?".into(), vec![0, 1]));
    }

    #[test]
    fn a_dollar_inside_an_identifier_is_not_a_placeholder() {
        assert_eq!(
            ok("SELECT a$1, _$2, é$3, $4"),
            ("SELECT a$1, _$2, é$3, ?".into(), vec![3])
        );
        unchanged("SELECT $$1");
    }

    #[test]
    fn unterminated_literals_and_comments_hide_the_rest() {
        assert_eq!(ok("SELECT $1, 'open $2"), ("SELECT ?, 'open $2".into(), vec![0]));
        assert_eq!(ok("SELECT $1, `open $2"), ("SELECT ?, `open $2".into(), vec![0]));
        assert_eq!(ok("SELECT $1 /* open $2"), ("SELECT ? /* open $2".into(), vec![0]));
        assert_eq!(ok(r"SELECT $1, 'ends in \"), (r"SELECT ?, 'ends in \".into(), vec![0]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Any mix of the characters the lexer cares about: no panic, and
        /// putting the numbers back where the `?` are gives the input.
        #[test]
        fn only_placeholders_change(sql in r#"[a_$1-9'"`\\#*/\- \né]{0,40}"#) {
            if let Ok(Some(rewritten)) = rewrite(&sql) {
                let mut numbers = rewritten.order.iter();
                let restored: String = rewritten
                    .sql
                    .chars()
                    .map(|c| match c {
                        '?' => format!("${}", numbers.next().expect("a number per ?") + 1),
                        c => c.to_string(),
                    })
                    .collect();
                proptest::prop_assert_eq!(restored, sql);
                proptest::prop_assert!(numbers.next().is_none());
            }
        }
    }

    #[test]
    fn refuses_what_is_not_a_placeholder() {
        assert!(rewrite("SELECT $0").unwrap_err().contains("$1, not $0"));
        assert!(
            rewrite("SELECT $99999999999999999999999")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(rewrite("SELECT * FROM t WHERE a = ?").unwrap_err().contains("not ?"));
        unchanged("SELECT '?', `?`, \"?\" -- ?\n");
    }
}
