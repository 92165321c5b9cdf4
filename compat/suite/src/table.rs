//! The tables of known divergences from the native `shm_open`: data in
//! `compat/divergences.txt` (for [`tmpshm::ShmDir`], illumos names) and
//! `compat/divergences-preload.txt` (for the preload library's interposers, glibc names), read
//! here, matched against cases by [`crate::diff`], and printed as Markdown
//! (`cargo run -p tmpshm-compat --bin divergences [-- --preload]`).
//!
//! Each file is a list of blocks, one per divergence, each `[id]` followed by `key = value`
//! lines; `#` starts a comment line. Keys: `names`, `ops`, `states` (selectors), `user`
//! (`root`, `user` or `*`: which pass of the suite sees it), `native` and `tmpshm` (the result
//! each side gives: `ok`, an errno name, or `*`; several separated by `,`), `category` (one
//! of [`CATEGORIES`]) and `reason`. A selector is a `,`-separated list of alternatives, each a
//! space-separated list of words that must all hold; `!word` must not hold; `*` always holds;
//! for names, `lenA..B` holds for the length classes from A to B bytes after the slash.

/// The reason categories an entry may give.
pub const CATEGORIES: &[&str] = &[
    "illumos rule",
    "security rule",
    "glibc quirk",
    "posix undefined",
];

/// A checked-in table, compiled in so the binary and the tests see the same data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFile {
    /// The file, relative to the workspace.
    pub path: &'static str,
    /// Its text.
    pub source: &'static str,
    /// The heading of the subject's result column in the Markdown table.
    pub column: &'static str,
    /// `docs/divergences.md` keeps its copy between `<!-- MARKER:begin -->` and
    /// `<!-- MARKER:end -->`.
    pub doc_marker: &'static str,
}

/// The table of the `ShmDir` pass: [`tmpshm::ShmDir`] in the illumos layout, illumos names.
pub const SHMDIR: TableFile = TableFile {
    path: "compat/divergences.txt",
    source: include_str!("../../divergences.txt"),
    column: "tmpshm",
    doc_marker: "divergences",
};

/// The table of the preload pass: the preload library's `shm_open`/`shm_unlink`, glibc names.
pub const PRELOAD: TableFile = TableFile {
    path: "compat/divergences-preload.txt",
    source: include_str!("../../divergences-preload.txt"),
    column: "preload library",
    doc_marker: "divergences-preload",
};

impl TableFile {
    /// The parsed table.
    ///
    /// # Errors
    /// As [`Table::parse`], with the file named.
    ///
    /// # Example
    /// ```
    /// let t = tmpshm_compat::table::PRELOAD.table()?;
    /// assert!(t.entries.iter().all(|e| e.id != "leading-slashes"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn table(&self) -> Result<Table, String> {
        Table::parse(self.source).map_err(|e| format!("{}: {e}", self.path))
    }
}

/// A block of the file being parsed: its id, the line of the id, its key-value pairs.
type Block = (String, usize, Vec<(String, String)>);

/// One known divergence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Short identifier (`[id]`).
    pub id: String,
    /// Which object names.
    pub names: String,
    /// Which operations (open flags, `unlink`).
    pub ops: String,
    /// Which prior states.
    pub states: String,
    /// Which pass: `root`, `user` or `*`.
    pub user: String,
    /// The native result(s).
    pub native: String,
    /// tmpshm's result(s).
    pub tmpshm: String,
    /// One of [`CATEGORIES`].
    pub category: String,
    /// Why tmpshm differs.
    pub reason: String,
}

/// The parsed table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The entries, in file order (the first matching entry explains a case).
    pub entries: Vec<Entry>,
}

/// True when `sel` (see the module docs) holds for something with the given `words`.
/// `len` is the length class of a name, for `lenA..B` words.
pub(crate) fn selects(sel: &str, words: &[&str], len: Option<usize>) -> bool {
    sel.split(',').any(|alt| {
        alt.split_whitespace().all(|w| {
            let (neg, w) = match w.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, w),
            };
            let holds = w == "*" || words.contains(&w) || len_range_holds(w, len);
            holds != neg
        })
    })
}

fn len_range_holds(word: &str, len: Option<usize>) -> bool {
    let (Some(len), Some(range)) = (len, word.strip_prefix("len")) else {
        return false;
    };
    match range.split_once("..") {
        Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
            (Ok(a), Ok(b)) => (a..=b).contains(&len),
            _ => false,
        },
        None => false,
    }
}

/// True when `result` (`ok` or an errno name) is one of the `,`-separated `expected`.
pub(crate) fn result_matches(expected: &str, result: &str) -> bool {
    expected
        .split(',')
        .map(str::trim)
        .any(|e| e == "*" || e == result)
}

impl Table {
    /// Parses the table format (see the module docs).
    ///
    /// # Errors
    /// A message naming the line: a key outside a block, an unknown or repeated key, a
    /// missing key, an unknown category, a repeated id.
    ///
    /// # Example
    /// ```
    /// let t = tmpshm_compat::table::Table::parse(tmpshm_compat::table::SHMDIR.source)?;
    /// assert!(t.entries.iter().any(|e| e.id == "wronly"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse(src: &str) -> Result<Table, String> {
        const KEYS: [&str; 8] = [
            "names", "ops", "states", "user", "native", "tmpshm", "category", "reason",
        ];
        // (id, line of the id, key-value pairs)
        let mut blocks: Vec<Block> = Vec::new();
        for (i, raw) in src.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(id) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                if blocks.iter().any(|(b, _, _)| b == id) {
                    return Err(format!("line {n}: repeated id [{id}]"));
                }
                blocks.push((id.to_string(), n, Vec::new()));
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("line {n}: expected `key = value`, got {line:?}"));
            };
            let (k, v) = (k.trim(), v.trim());
            let Some((_, _, kv)) = blocks.last_mut() else {
                return Err(format!("line {n}: `{k}` before any [id]"));
            };
            if !KEYS.contains(&k) {
                return Err(format!("line {n}: unknown key `{k}`"));
            }
            if kv.iter().any(|(key, _)| key == k) {
                return Err(format!("line {n}: repeated key `{k}`"));
            }
            kv.push((k.to_string(), v.to_string()));
        }
        let mut entries = Vec::new();
        for (id, n, kv) in blocks {
            let get = |k: &str| {
                kv.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("[{id}] (line {n}): missing `{k}`"))
            };
            let e = Entry {
                id: id.clone(),
                names: get("names")?,
                ops: get("ops")?,
                states: get("states")?,
                user: get("user")?,
                native: get("native")?,
                tmpshm: get("tmpshm")?,
                category: get("category")?,
                reason: get("reason")?,
            };
            if !CATEGORIES.contains(&e.category.as_str()) {
                return Err(format!(
                    "[{id}]: category {:?} is not one of {CATEGORIES:?}",
                    e.category
                ));
            }
            if !["root", "user", "*"].contains(&e.user.as_str()) {
                return Err(format!("[{id}]: user must be root, user or *"));
            }
            entries.push(e);
        }
        Ok(Table { entries })
    }

    /// The table as Markdown, as `docs/divergences.md` shows it; `column` heads the subject's results.
    ///
    /// # Example
    /// ```
    /// use tmpshm_compat::table::SHMDIR;
    /// let t = SHMDIR.table()?;
    /// assert!(t.markdown(SHMDIR.column).starts_with("| id |"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn markdown(&self, column: &str) -> String {
        let cell = |s: &str| s.replace('|', "\\|");
        // Selectors and results as code: `*` and `!` stay literal.
        let code = |s: &str| {
            s.split(',')
                .map(|part| format!("`{}`", part.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = format!(
            "| id | names | operations | prior state | as | native (glibc) | {} | category | reason |\n\
             |---|---|---|---|---|---|---|---|---|\n",
            cell(column)
        );
        for e in &self.entries {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                e.id,
                code(&e.names),
                code(&e.ops),
                code(&e.states),
                code(&e.user),
                code(&e.native),
                code(&e.tmpshm),
                e.category,
                cell(&e.reason)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert!(selects("*", &[], None));
        assert!(selects("RDONLY TRUNC", &["RDONLY", "TRUNC", "CREAT"], None));
        assert!(!selects("RDONLY TRUNC", &["RDONLY", "CREAT"], None));
        assert!(selects("EXCL !CREAT, WRONLY", &["WRONLY", "CREAT"], None));
        assert!(!selects("EXCL !CREAT", &["EXCL", "CREAT"], None));
        assert!(selects("len251..255", &["len"], Some(253)));
        assert!(!selects("len251..255", &["len"], Some(256)));
        assert!(!selects("len251..255", &["ordinary"], None));
        assert!(result_matches("ENOENT, ok", "ok"));
        assert!(!result_matches("ENOENT", "ok"));
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert!(Table::parse("names = x")
            .unwrap_err()
            .contains("before any"));
        assert!(Table::parse("[a]\nfoo = 1")
            .unwrap_err()
            .contains("unknown key"));
        assert!(Table::parse("[a]\nnames = x")
            .unwrap_err()
            .contains("missing"));
        let bad_cat =
            "[a]\nnames=*\nops=*\nstates=*\nuser=*\nnative=*\ntmpshm=*\ncategory=x\nreason=r";
        assert!(Table::parse(bad_cat).unwrap_err().contains("category"));
    }

    #[test]
    fn the_checked_in_tables_parse() {
        for file in [SHMDIR, PRELOAD] {
            assert!(!file.table().unwrap().entries.is_empty(), "{}", file.path);
        }
    }
}
