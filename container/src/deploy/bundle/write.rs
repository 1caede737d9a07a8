//! Writing a bundle (`crabcat package`, and tests).

use std::io::Write;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

use super::{BundleError, DESCRIPTOR, Descriptor};

/// What goes into a bundle.
#[derive(Debug, Clone)]
pub struct BundleContents {
    /// The descriptor.
    pub descriptor: Descriptor,
    /// The compiled library; stored as `lib/<its file name>`.
    pub library: PathBuf,
    /// A directory stored as `static/`, if any. Symbolic links in it are
    /// refused (a bundle holds only plain files).
    pub static_dir: Option<PathBuf>,
}

/// Writes `contents` as a bundle to `out` (through a temporary file
/// renamed into place, so a deploy directory never sees half a bundle).
///
/// # Errors
/// If a file cannot be read or the bundle written.
pub fn write_bundle(contents: &BundleContents, out: &Path) -> Result<(), BundleError> {
    let tmp = out.with_file_name(format!(
        ".{}.tmp",
        out.file_name().unwrap_or_default().to_string_lossy()
    ));
    let result = write_to(contents, &tmp, out).and_then(|()| std::fs::rename(&tmp, out).map_err(io(out, out)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn io(file: &Path, path: &Path) -> impl FnOnce(std::io::Error) -> BundleError {
    let (file, path) = (file.to_path_buf(), path.to_path_buf());
    move |source| BundleError::Io { file, path, source }
}

fn write_to(contents: &BundleContents, tmp: &Path, out: &Path) -> Result<(), BundleError> {
    let zip_error = |e: zip::result::ZipError| BundleError::Io {
        file: out.to_path_buf(),
        path: tmp.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let file = std::fs::File::create(tmp).map_err(io(out, tmp))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    zip.start_file(DESCRIPTOR, options).map_err(zip_error)?;
    zip.write_all(contents.descriptor.to_toml().as_bytes())
        .map_err(io(out, tmp))?;
    let library_name = contents
        .library
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io(out, &contents.library)(std::io::Error::other("not a file name")))?;
    add_file(
        &mut zip,
        &contents.library,
        &format!("lib/{library_name}"),
        options,
        out,
    )?;
    if let Some(dir) = &contents.static_dir {
        add_tree(&mut zip, dir, "static", options, out)?;
    }
    let mut writer = zip.finish().map_err(zip_error)?;
    writer.flush().map_err(io(out, tmp))?;
    Ok(())
}

type Zip = zip::ZipWriter<std::io::BufWriter<std::fs::File>>;

fn add_file(zip: &mut Zip, from: &Path, name: &str, options: SimpleFileOptions, out: &Path) -> Result<(), BundleError> {
    zip.start_file(name, options)
        .map_err(|e| io(out, from)(std::io::Error::other(e)))?;
    let mut source = std::fs::File::open(from).map_err(io(out, from))?;
    std::io::copy(&mut source, zip).map_err(io(out, from))?;
    Ok(())
}

/// Adds every file under `dir` as `prefix/...`, in a stable order.
fn add_tree(
    zip: &mut Zip,
    dir: &Path,
    prefix: &str,
    options: SimpleFileOptions,
    out: &Path,
) -> Result<(), BundleError> {
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)
        .map_err(io(out, dir))?
        .collect::<Result<_, _>>()
        .map_err(io(out, dir))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(io(out, &path))?;
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            return Err(io(out, &path)(std::io::Error::other("file name is not UTF-8")));
        };
        let name = format!("{prefix}/{file_name}");
        if kind.is_dir() {
            add_tree(zip, &path, &name, options, out)?;
        } else if kind.is_file() {
            add_file(zip, &path, &name, options, out)?;
        } else {
            return Err(io(out, &path)(std::io::Error::other(
                "not a plain file (a bundle holds no symbolic links)",
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{BundleLimits, unpack};
    use super::*;

    fn descriptor() -> Descriptor {
        Descriptor::parse("name = \"shop\"\nversion = \"1.0.0\"").unwrap()
    }

    #[test]
    fn what_is_written_unpacks() {
        let dir = tempfile::tempdir().unwrap();
        let library = dir.path().join("libshop.so");
        std::fs::write(&library, b"not really a library").unwrap();
        let statics = dir.path().join("static");
        std::fs::create_dir_all(statics.join("css")).unwrap();
        std::fs::write(statics.join("index.html"), b"<h1>shop</h1>").unwrap();
        std::fs::write(statics.join("css/site.css"), b"h1 {}").unwrap();
        let out = dir.path().join("shop-1.0.0.crabcat");
        let contents = BundleContents {
            descriptor: descriptor(),
            library,
            static_dir: Some(statics),
        };
        write_bundle(&contents, &out).unwrap();
        assert!(super::super::is_bundle(&out).unwrap());
        let limits = BundleLimits {
            max_bytes: 1 << 20,
            max_entries: 100,
        };
        let dest = dir.path().join("unpacked");
        let unpacked = unpack(&out, "shop", &dest, limits).unwrap();
        assert_eq!(unpacked.descriptor, descriptor());
        assert_eq!(unpacked.library, dest.join("lib/libshop.so"));
        let css = std::fs::read(dest.join("static/css/site.css")).unwrap();
        assert_eq!(css, b"h1 {}");
        let error = unpack(&out, "other", &dir.path().join("again"), limits).unwrap_err();
        assert!(error.to_string().contains("names app \"shop\""), "{error}");
        assert!(
            !dir.path().join("again").exists(),
            "a refused bundle leaves nothing behind"
        );
        let tight = BundleLimits {
            max_bytes: 10,
            ..limits
        };
        let error = unpack(&out, "shop", &dir.path().join("tight"), tight).unwrap_err();
        assert!(error.to_string().contains("max_bundle_bytes"), "{error}");
        drop(unpacked);
        assert!(!dest.exists(), "dropping the last handle removes the directory");
    }
}
