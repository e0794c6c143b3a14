//! Files `dev` writes that must stay private: written whole under a fresh name with their
//! mode from the first byte, then renamed into place; directories created new, 0700, under an
//! unpredictable name, never one someone else prepared.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` through a new temporary file beside it (owner-only while it is
/// written, then `mode`) and a rename: a reader never sees a partial file, an existing file
/// is never written through, and the contents are never readable by others on the way.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let (tmp, mut file) = create_fresh(|| {
        let tmp = dir.join(format!(
            ".{file_name}.tmp-{}-{:016x}",
            std::process::id(),
            random()
        ));
        options.open(&tmp).map(|f| (tmp, f))
    })?;
    let written = file
        .write_all(contents)
        .and_then(|()| set_mode(&file, mode));
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// A new directory under `parent`, readable by this user only (0700), created by this call.
pub fn private_dir(parent: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    create_fresh(|| {
        let dir = parent.join(format!("{prefix}-{}-{:016x}", std::process::id(), random()));
        builder.create(&dir).map(|()| dir)
    })
}

/// Calls `create` with a new random name until one does not exist yet (a few tries).
fn create_fresh<T>(mut create: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut attempt = 0;
    loop {
        match create() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            other => return other,
        }
    }
}

#[cfg(unix)]
fn set_mode(file: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &std::fs::File, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// 64 unpredictable bits (the standard library's per-process random hash keys, and the time).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn a_private_directory_is_new_and_only_ours() {
        let parent = private_dir(&std::env::temp_dir(), "files-test").expect("scratch dir");
        let a = private_dir(&parent, "node").expect("create");
        let b = private_dir(&parent, "node").expect("create another");
        assert_ne!(a, b, "a second call never reuses the first directory");
        assert_eq!(mode_of(&a), 0o700);
        std::fs::remove_dir_all(&parent).expect("clean up");
    }

    #[test]
    fn a_file_is_written_whole_with_its_mode_and_replaces_the_old_one() {
        let dir = private_dir(&std::env::temp_dir(), "files-test").expect("scratch dir");
        let path = dir.join("kubeconfig");
        std::fs::write(&path, b"old").expect("an old file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_atomically(&path, b"token: secret", 0o600).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"token: secret");
        assert_eq!(mode_of(&path), 0o600);
        write_atomically(&path, b"public", 0o644).expect("write again");
        assert_eq!(mode_of(&path), 0o644);
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| n != "kubeconfig")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
