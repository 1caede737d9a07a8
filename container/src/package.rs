//! `crabcat package`: builds an app bundle from an app crate.
//!
//! 1. `cargo metadata` finds the crate (name, version, its cdylib target)
//!    and the target directory (`CARGO_TARGET_DIR` and cargo's config
//!    respected);
//! 2. `cargo build --release --lib` builds the library;
//! 3. the descriptor is the crate's `crabcat-app.toml`, with `name` and
//!    `version` taken from `Cargo.toml` unless it sets them;
//! 4. the library, `static/` (if present) and the descriptor are written
//!    to `<target dir>/crabcat/<name>-<version>.crabcat` (or `--out`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::deploy::bundle::{BundleContents, BundleError, DESCRIPTOR, Descriptor, write_bundle};

/// Why no bundle was written.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// `cargo` could not be run, or failed.
    #[error("cargo {step} failed: {reason}")]
    Cargo { step: &'static str, reason: String },
    /// The crate is not one an app bundle can be made from.
    #[error("{manifest}: {reason}")]
    Crate { manifest: PathBuf, reason: String },
    /// The crate's `crabcat-app.toml` is invalid.
    #[error("{path}: {reason}")]
    Descriptor { path: PathBuf, reason: String },
    /// Writing the bundle failed.
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

/// What `cargo metadata` says, as far as packaging needs it.
#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    target_directory: PathBuf,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    manifest_path: PathBuf,
    targets: Vec<Target>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    crate_types: Vec<String>,
}

/// Packages the crate at `manifest` (default `./Cargo.toml`) into a
/// bundle; returns the bundle's path.
///
/// # Errors
/// See [`PackageError`].
pub fn package(manifest: Option<&Path>, out: Option<&Path>) -> Result<PathBuf, PackageError> {
    let manifest = manifest.unwrap_or(Path::new("Cargo.toml"));
    let manifest = std::fs::canonicalize(manifest).map_err(|e| PackageError::Crate {
        manifest: manifest.to_path_buf(),
        reason: e.to_string(),
    })?;
    let metadata = metadata(&manifest)?;
    let package = metadata
        .packages
        .iter()
        .find(|p| p.manifest_path == manifest)
        .ok_or_else(|| crate_error(&manifest, "cargo metadata does not list this crate"))?;
    let lib = package
        .targets
        .iter()
        .find(|t| t.crate_types.iter().any(|c| c == "cdylib"))
        .ok_or_else(|| crate_error(&manifest, "no cdylib library: add crate-type = [\"cdylib\"] to [lib]"))?;
    build(&manifest)?;
    let library = metadata.target_directory.join("release").join(format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        lib.name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    ));
    if !library.is_file() {
        return Err(crate_error(
            &manifest,
            &format!("the build made no {}", library.display()),
        ));
    }
    let crate_dir = manifest.parent().unwrap_or(Path::new("."));
    let descriptor = descriptor(crate_dir, package)?;
    let out = out.map_or_else(
        || {
            let dir = metadata.target_directory.join("crabcat");
            dir.join(format!("{}-{}.crabcat", descriptor.name, descriptor.version))
        },
        Path::to_path_buf,
    );
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| crate_error(parent, &e.to_string()))?;
    }
    let static_dir = Some(crate_dir.join("static")).filter(|d| d.is_dir());
    let contents = BundleContents {
        descriptor,
        library,
        static_dir,
    };
    write_bundle(&contents, &out)?;
    Ok(out)
}

fn crate_error(manifest: &Path, reason: &str) -> PackageError {
    PackageError::Crate {
        manifest: manifest.to_path_buf(),
        reason: reason.to_owned(),
    }
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn metadata(manifest: &Path) -> Result<Metadata, PackageError> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(manifest)
        .output()
        .map_err(|e| cargo_error("metadata", e.to_string()))?;
    if !output.status.success() {
        return Err(cargo_error(
            "metadata",
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| cargo_error("metadata", e.to_string()))
}

/// `cargo build --release --lib`, its progress shown as it goes.
fn build(manifest: &Path) -> Result<(), PackageError> {
    let status = cargo()
        .args(["build", "--release", "--lib", "--manifest-path"])
        .arg(manifest)
        .status()
        .map_err(|e| cargo_error("build", e.to_string()))?;
    if !status.success() {
        return Err(cargo_error("build", format!("exited with {status}")));
    }
    Ok(())
}

fn cargo_error(step: &'static str, reason: String) -> PackageError {
    PackageError::Cargo {
        step,
        reason: reason.trim().to_owned(),
    }
}

/// The crate's `crabcat-app.toml`, `name` and `version` defaulting to
/// Cargo.toml's; without the file, just those two.
fn descriptor(crate_dir: &Path, package: &Package) -> Result<Descriptor, PackageError> {
    let path = crate_dir.join(DESCRIPTOR);
    let bad = |reason: String| PackageError::Descriptor {
        path: path.clone(),
        reason,
    };
    let mut table: toml::Table = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| bad(e.message().to_owned()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => return Err(bad(e.to_string())),
    };
    for (key, value) in [("name", &package.name), ("version", &package.version)] {
        table.entry(key).or_insert_with(|| toml::Value::String(value.clone()));
    }
    Descriptor::parse(&table.to_string()).map_err(bad)
}
