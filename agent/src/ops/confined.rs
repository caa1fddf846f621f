//! File operations confined beneath a directory: every component of a path is opened relative
//! to the one before with `O_NOFOLLOW`, so a symbolic link anywhere — planted before or during
//! the operation — cannot lead it outside the directory. Used for what a virus scan does to
//! the files it found (rename, delete, quarantine), where the file names are chosen by whoever
//! could write the scanned tree.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, RenameFlags};

/// A regular file beneath a directory, opened component by component.
pub struct Confined {
    dir: OwnedFd,
    name: std::ffi::OsString,
    /// Its mode, owner and size when it was found.
    pub stat: rustix::fs::Stat,
}

fn open_dir_at(at: impl std::os::fd::AsFd, name: &OsStr) -> std::io::Result<OwnedFd> {
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY;
    Ok(rustix::fs::openat(at, name, flags, Mode::empty())?)
}

fn refused(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, what.to_string())
}

impl Confined {
    /// The regular file `relative` beneath the directory `base` (itself not a symbolic link);
    /// an error when any component is a symbolic link, `..`, or the file is not regular.
    pub fn open(base: &Path, relative: &Path) -> std::io::Result<Confined> {
        let mut dir = open_dir_at(CWD, base.as_os_str())?;
        let parts: Vec<&OsStr> = relative
            .components()
            .map(|c| match c {
                Component::Normal(n) => Ok(n),
                _ => Err(refused("only plain names beneath the scanned directory")),
            })
            .collect::<Result<_, _>>()?;
        let Some((name, parents)) = parts.split_last() else {
            return Err(refused("no file name"));
        };
        for p in parents {
            dir = open_dir_at(&dir, p).map_err(|e| {
                if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
                    || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
                {
                    refused("a directory on the way is a symbolic link or not a directory")
                } else {
                    e
                }
            })?;
        }
        let stat = rustix::fs::statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(refused(
                "not a regular file (a symbolic link is never followed)",
            ));
        }
        Ok(Confined {
            dir,
            name: name.to_os_string(),
            stat,
        })
    }

    /// Renames the file within its directory, appending `suffix`; never replaces a file.
    pub fn rename_with_suffix(&mut self, suffix: &str) -> std::io::Result<()> {
        if suffix.contains('/') || suffix.is_empty() {
            return Err(refused("the suffix must be a plain name part"));
        }
        let mut to = self.name.clone();
        to.push(suffix);
        rustix::fs::renameat_with(
            &self.dir,
            &self.name,
            &self.dir,
            &to,
            RenameFlags::NOREPLACE,
        )?;
        self.name = to;
        Ok(())
    }

    /// Deletes the file.
    pub fn delete(self) -> std::io::Result<()> {
        Ok(rustix::fs::unlinkat(
            &self.dir,
            &self.name,
            AtFlags::empty(),
        )?)
    }

    /// Moves the file into the directory `quarantine` (created 0700 when missing) as `to`, by
    /// rename or, across filesystems, by copy and delete; the copy is read-only.
    pub fn move_into(self, quarantine: &Path, to: &str) -> std::io::Result<()> {
        if !quarantine.exists() {
            std::fs::create_dir_all(quarantine)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(quarantine, std::fs::Permissions::from_mode(0o700))?;
        }
        let q = open_dir_at(CWD, quarantine.as_os_str())?;
        let to = OsStr::from_bytes(to.as_bytes());
        match rustix::fs::renameat_with(&self.dir, &self.name, &q, to, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::XDEV) => self.copy_then_delete(&q, to),
            Err(e) => Err(e.into()),
        }
    }

    fn copy_then_delete(self, q: &OwnedFd, to: &OsStr) -> std::io::Result<()> {
        let read = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let from = rustix::fs::openat(&self.dir, &self.name, read, Mode::empty())?;
        let write = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        let into = rustix::fs::openat(q, to, write, Mode::RUSR)?;
        let (mut from, mut into) = (std::fs::File::from(from), std::fs::File::from(into));
        std::io::copy(&mut from, &mut into)?;
        into.sync_all()?;
        self.delete()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn symbolic_links_never_lead_outside() {
        let dir = std::env::temp_dir().join(format!("unyo-confined-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (tree, outside) = (dir.join("tree"), dir.join("outside"));
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("victim"), "keep me").unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), tree.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("dirlink")).unwrap();
        assert!(Confined::open(&tree, Path::new("link")).is_err());
        assert!(Confined::open(&tree, Path::new("dirlink/victim")).is_err());
        assert!(Confined::open(&tree, Path::new("../outside/victim")).is_err());
        assert_eq!(
            std::fs::read_to_string(outside.join("victim")).unwrap(),
            "keep me"
        );

        std::fs::write(tree.join("sub/bad"), "x").unwrap();
        let mut f = Confined::open(&tree, Path::new("sub/bad")).unwrap();
        f.rename_with_suffix(".infected").unwrap();
        assert!(tree.join("sub/bad.infected").exists());
        f.move_into(&dir.join("q"), "1-bad").unwrap();
        assert!(dir.join("q/1-bad").exists() && !tree.join("sub/bad.infected").exists());
        std::fs::write(tree.join("gone"), "x").unwrap();
        Confined::open(&tree, Path::new("gone"))
            .unwrap()
            .delete()
            .unwrap();
        assert!(!tree.join("gone").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
