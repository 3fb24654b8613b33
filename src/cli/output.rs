//! Writing a command's output files safely: every path is checked before the work starts, and
//! the files are written all or none.
//!
//! - A path that names a directory, FIFO, socket or device is refused (writing would replace or
//!   block on it). A symlink to a regular file is written through: the link stays and its target
//!   gets the new content, as a shell's `>` does; a dangling symlink or one to anything else is
//!   refused.
//! - Each file is first written in full to a temporary file next to its target; only when every
//!   output of the command is ready are they renamed into place, so an error in the second
//!   output leaves the first untouched. (A rename can still fail in between, e.g. when the disk
//!   is removed; the message then names what was written.)
//! - New files get mode 0666 minus the umask, like other tools; an existing file keeps its mode.
//! - Image outputs must end in `.png`, the only format written.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// What an output path holds: the content's format, checked against the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any extension (safetensors, JSON).
    Data,
    /// A PNG image: the path must end in `.png`.
    Png,
}

/// The file a write to `path` lands in (the target of a symlink), after checking that writing
/// there replaces nothing but a regular file. `flag` names the option in errors.
pub fn check(flag: &str, path: &Path, kind: Kind) -> Result<PathBuf> {
    let shown = path.display();
    if kind == Kind::Png && !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        bail!("{flag} {shown}: only PNG images are written; give a path ending in .png");
    }
    let target = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e).with_context(|| format!("{flag} {shown}")),
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = fs::canonicalize(path)
                .with_context(|| format!("{flag} {shown} is a symlink to nothing that exists"))?;
            refuse_special(flag, path, &fs::metadata(&target)?)?;
            target
        }
        Ok(meta) => {
            refuse_special(flag, path, &meta)?;
            path.to_path_buf()
        }
    };
    let parent = parent_of(&target);
    if !parent.is_dir() {
        bail!("{flag} {shown}: the folder {} does not exist", parent.display());
    }
    Ok(target)
}

fn refuse_special(flag: &str, path: &Path, meta: &fs::Metadata) -> Result<()> {
    if meta.is_file() {
        return Ok(());
    }
    let what = if meta.is_dir() {
        "a directory"
    } else {
        special_kind(meta)
    };
    bail!(
        "{flag} {} is {what}; refusing to replace it (give a regular file's path)",
        path.display()
    )
}

#[cfg(unix)]
fn special_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_meta: &fs::Metadata) -> &'static str {
    "not a regular file"
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// One output written to a temporary file, waiting for the rename.
#[derive(Debug)]
struct Staged {
    temp: PathBuf,
    target: PathBuf,
    shown: PathBuf,
}

/// The outputs of one command, committed together.
#[derive(Debug, Default)]
pub struct Outputs {
    staged: Vec<Staged>,
}

impl Outputs {
    /// Writes `bytes` for `path` (as [`check`] resolved it to `target`) to a temporary file in
    /// the target's folder.
    pub fn stage(&mut self, path: &Path, target: &Path, bytes: &[u8]) -> Result<()> {
        let temp = temp_path(target, self.staged.len());
        // Tracked before writing, so a failed write is cleaned up with the rest.
        self.staged.push(Staged {
            temp: temp.clone(),
            target: target.to_path_buf(),
            shown: path.to_path_buf(),
        });
        write_new(&temp, bytes).with_context(|| format!("writing {}", path.display()))?;
        if let Ok(meta) = fs::metadata(target) {
            // An existing file keeps its mode.
            fs::set_permissions(&temp, meta.permissions())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Renames every staged file into place, in order; the paths as the user gave them.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
        let staged = std::mem::take(&mut self.staged);
        let mut done = Vec::new();
        let mut rest = staged.into_iter();
        while let Some(s) = rest.next() {
            if let Err(e) = fs::rename(&s.temp, &s.target) {
                let _ = fs::remove_file(&s.temp);
                for r in rest {
                    let _ = fs::remove_file(&r.temp);
                }
                let written: Vec<String> = done.iter().map(|p: &PathBuf| p.display().to_string()).collect();
                return Err(e).with_context(|| {
                    format!(
                        "writing {} (already written: {})",
                        s.shown.display(),
                        if written.is_empty() {
                            "none".to_string()
                        } else {
                            written.join(", ")
                        }
                    )
                });
            }
            done.push(s.shown);
        }
        Ok(done)
    }
}

impl Drop for Outputs {
    /// Outputs never committed (an error on the way) leave no temporary files behind.
    fn drop(&mut self) {
        for s in &self.staged {
            let _ = fs::remove_file(&s.temp);
        }
    }
}

fn temp_path(target: &Path, n: usize) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(target).join(format!(".{name}.{}-{n}.cachedit-tmp", std::process::id()))
}

/// Creates `path` (it must not exist) with mode 0666 minus the umask and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o666);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only checked, never written: a bug here must not replace a device node when run as root.
    #[cfg(unix)]
    #[test]
    fn devices_and_directories_are_refused() {
        let err = check("--output", Path::new("/dev/null"), Kind::Data).unwrap_err();
        assert!(err.to_string().contains("is a device; refusing"), "{err}");
        let err = check("--output", Path::new("/"), Kind::Data).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        let err = check("--plot", Path::new("plot.PNG.jpg"), Kind::Png).unwrap_err();
        assert!(err.to_string().contains("only PNG"), "{err}");
        assert!(check("--plot", Path::new("plot.PNG"), Kind::Png).is_ok());
    }
}
