//! Keeping a request inside its directory: the request path is checked
//! segment by segment before any file is touched, and the files it may
//! open are resolved (symlinks followed) and must stay inside the root.

use std::path::{Path, PathBuf};

use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

/// The file path that `relative` (a request path inside the mount, still
/// percent-encoded, starting with `/`) names, relative to the directory.
/// `None` when a segment is `.` or `..`, or decodes to text holding `/`
/// (`%2f`), `\`, NUL, or to something that is not UTF-8: the request then
/// gets `400`. Empty segments (`//`) are skipped, so no path is absolute.
pub fn file_path(relative: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for segment in relative.split('/').filter(|s| !s.is_empty()) {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8().ok()?;
        if decoded == "." || decoded == ".." || decoded.contains(['/', '\\', '\0']) {
            return None;
        }
        path.push(&*decoded);
    }
    Some(path)
}

/// What `ServeDir` may open for `file`: the file, its `index.html` when
/// the request names a directory (`index`), and their precompressed
/// variants when the client accepts them.
pub struct Candidates {
    file: PathBuf,
    index: bool,
    br: bool,
    gzip: bool,
}

impl Candidates {
    /// The candidates of `file` for a request with `headers`.
    pub fn new(file: PathBuf, index: bool, headers: &HeaderMap) -> Self {
        let accepted = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
        Candidates {
            file,
            index,
            br: accepted.contains("br"),
            gzip: accepted.contains("gzip"),
        }
    }

    /// Whether any candidate that exists resolves, symlinks followed,
    /// outside `root` (canonical). Blocking: a few `lstat`s and `readlink`s.
    pub fn escape(&self, root: &Path) -> bool {
        let file = root.join(&self.file);
        let index = self.index.then(|| file.join("index.html"));
        let bases = std::iter::once(file).chain(index);
        bases.into_iter().any(|base| {
            self.variants(&base)
                .chain([base.clone()])
                .any(|candidate| outside(&candidate, root))
        })
    }

    /// The precompressed variants of `base` the client accepts.
    pub fn variants(&self, base: &Path) -> impl Iterator<Item = PathBuf> {
        let br = self.br.then(|| with_suffix(base, ".br"));
        let gzip = self.gzip.then(|| with_suffix(base, ".gz"));
        br.into_iter().chain(gzip)
    }

    /// The file, relative to the directory.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

/// Whether `path` exists and resolves outside `root`. A path that does not
/// resolve (missing) is not outside: `ServeDir` will not find it either.
fn outside(path: &Path, root: &Path) -> bool {
    std::fs::canonicalize(path).is_ok_and(|real| !real.starts_with(root))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_decode() {
        assert_eq!(file_path("/a/b%20c.txt"), Some(PathBuf::from("a/b c.txt")));
        assert_eq!(file_path("/"), Some(PathBuf::new()));
        assert_eq!(file_path("//etc/passwd"), Some(PathBuf::from("etc/passwd")));
        assert_eq!(file_path("/dir/"), Some(PathBuf::from("dir")));
    }

    #[test]
    fn traversal_and_odd_bytes_are_refused() {
        for bad in [
            "/../x",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2e/x",
            "/a/%2e%2e%2fx",
            "/..%2fx",
            "/a%2fb",
            "/a%5cb",
            "/a\\b",
            "/a%00b",
            "/.",
            "/%2e",
            "/%ff",
        ] {
            assert_eq!(file_path(bad), None, "{bad}");
        }
    }
}
