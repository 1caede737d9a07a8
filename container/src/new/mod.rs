//! `crabcat new NAME`: scaffolds an app crate outside the repository: a
//! cdylib with the SDK wired as a path dependency on this checkout's
//! `sdk/`, a hello route, a route using the database, a migration, static
//! files, the bundle descriptor, and a test that runs the app in the real
//! container. The files are the templates in `template/`, embedded at
//! build time.

use std::path::{Path, PathBuf};

/// Why a crate could not be created.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// The name cannot be an app name.
    #[error("invalid app name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    /// The target directory exists and is not empty.
    #[error("{0} already exists and is not empty")]
    Exists(PathBuf),
    /// The SDK is not where it was looked for.
    #[error("no crabcat-sdk at {0}: pass the sdk/ directory of a Crabcat checkout with --sdk-path")]
    NoSdk(PathBuf),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The SDK of the checkout this binary was built from.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

/// What goes where: (path in the crate, template).
const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("template/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("template/lib.rs.tmpl")),
    (
        "migrations/0001_create_visits.sql",
        include_str!("template/migration.sql.tmpl"),
    ),
    ("static/index.html", include_str!("template/index.html.tmpl")),
    ("static/style.css", include_str!("template/style.css.tmpl")),
    ("crabcat-app.toml", include_str!("template/crabcat-app.toml.tmpl")),
    ("tests/app.rs", include_str!("template/test.rs.tmpl")),
    ("README.md", include_str!("template/README.md.tmpl")),
    (".gitignore", include_str!("template/gitignore.tmpl")),
];

/// Creates app crate `name` in `dir` (default `./NAME`), depending on the
/// SDK at `sdk` (default: this checkout's `sdk/`). Returns the directory.
///
/// # Errors
/// See [`NewError`].
pub fn scaffold(name: &str, dir: Option<&Path>, sdk: Option<&Path>) -> Result<PathBuf, NewError> {
    crate::deploy::validate_name(name).map_err(|reason| NewError::BadName {
        name: name.to_owned(),
        reason,
    })?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(NewError::Exists(dir));
    }
    let sdk = sdk.unwrap_or(Path::new(BUILT_SDK));
    let sdk = std::fs::canonicalize(sdk)
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| NewError::NoSdk(sdk.to_path_buf()))?;
    let crabcat = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("crabcat"));
    let crate_name = name.replace('-', "_");
    let values = [
        ("{{name}}", name.to_owned()),
        ("{{crate_name}}", crate_name.clone()),
        ("{{table}}", format!("{crate_name}_visits")),
        ("{{sdk_path}}", escaped(&sdk)),
        ("{{crabcat_bin}}", escaped(&crabcat)),
    ];
    for (path, template) in FILES {
        let text = values
            .iter()
            .fold((*template).to_owned(), |text, (key, value)| text.replace(key, value));
        write(&dir.join(path), &text)?;
    }
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<(), NewError> {
    let io = |source| NewError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

/// A path inside a TOML basic string or a Rust string literal (both
/// escape `\\` and `"` the same way).
fn escaped(path: &Path) -> String {
    path.display().to_string().replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("my-shop");
        scaffold("my-shop", Some(&app), None).unwrap();
        for (path, _) in FILES {
            let text = std::fs::read_to_string(app.join(path)).unwrap();
            assert!(!text.contains("{{"), "{path} has an unfilled placeholder");
        }
        let cargo: toml::Table = toml::from_str(&std::fs::read_to_string(app.join("Cargo.toml")).unwrap()).unwrap();
        let sdk = cargo["dependencies"]["crabcat-sdk"]["path"].as_str().unwrap();
        assert!(Path::new(sdk).join("Cargo.toml").is_file(), "{sdk}");
        let lib = std::fs::read_to_string(app.join("src/lib.rs")).unwrap();
        assert!(lib.contains("my_shop_visits"), "the table is named after the crate");
        assert!(matches!(
            scaffold("my-shop", Some(&app), None),
            Err(NewError::Exists(_))
        ));
        assert!(matches!(scaffold("a b", None, None), Err(NewError::BadName { .. })));
    }
}
