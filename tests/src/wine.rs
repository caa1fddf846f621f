//! The Windows agent under Wine: cross-compiled for `x86_64-pc-windows-gnu`, run by Debian's
//! Wine 8 in a prefix of its own (created fresh, set to Windows Server 2008 R2, and whose
//! wineserver is stopped when the prefix is dropped). See hack/wine/README.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::{repo_root, stdout_of, workspace_binary_for};

/// Debian's 64-bit Wine loader.
pub const WINE: &str = "/usr/lib/wine/wine64";
/// Debian's 64-bit wineserver (`-k` stops the processes of one prefix).
pub const WINESERVER: &str = "/usr/lib/wine/wineserver64";
/// The Windows target the agent is built for.
pub const TARGET: &str = "x86_64-pc-windows-gnu";

/// `unyo-agent.exe`, built first if needed, with Wine's missing bcryptprimitives.dll beside it.
pub fn agent_exe() -> Result<PathBuf> {
    let exe = workspace_binary_for("unyo-agent", "unyo-agent", Some(TARGET))?;
    let dir = exe.parent().context("the .exe has no directory")?;
    let src = repo_root().join("hack/wine");
    stdout_of(
        Command::new("x86_64-w64-mingw32-gcc")
            .args(["-shared", "-O2", "-o"])
            .arg(dir.join("bcryptprimitives.dll"))
            .arg(src.join("bcryptprimitives.c"))
            .arg(src.join("bcryptprimitives.def"))
            .arg("-lbcrypt"),
    )?;
    Ok(exe)
}

/// A Wine prefix of a test's own.
#[derive(Debug)]
pub struct Prefix {
    pub dir: PathBuf,
}

impl Prefix {
    /// Creates the prefix and sets it to Windows Server 2008 R2.
    pub fn new(name: &str) -> Result<Prefix> {
        let dir = std::env::temp_dir().join(format!("unyo-wine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = Prefix { dir };
        stdout_of(p.command("wineboot").arg("-i")).context("wineboot")?;
        stdout_of(p.command("winecfg").args(["/v", "win2008r2"])).context("winecfg")?;
        Ok(p)
    }

    /// `program` run by Wine in this prefix, its debug channels silenced.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(WINE);
        cmd.arg(program)
            .env("WINEPREFIX", &self.dir)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
        cmd
    }

    /// `path` as the Windows program sees it (Wine maps Z: to /).
    pub fn windows_path(path: &Path) -> String {
        format!("Z:{}", path.display()).replace('/', "\\")
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let _ = Command::new(WINESERVER)
            .arg("-k")
            .env("WINEPREFIX", &self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
