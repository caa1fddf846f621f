//! `patch-lab DIR`: the apt world of the demo, built with the tests' lab: beneath DIR a security
//! archive released 5 days ago (`unyo-demo-ssl` 1.0 → 1.1, urgency high) and an updates archive
//! released yesterday (`unyo-demo-tz` 1.0 → 2.0), and one host root per name given after DIR
//! with both packages at 1.0. Prints each root. Only DIR is written.

use std::path::PathBuf;

use anyhow::{Context, Result};
use unyo_tests::aptlab::{self, Archive, Deb};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: patch-lab DIR HOST...")?);
    let hosts: Vec<String> = args.collect();
    let deb = Deb::new;
    let archives = [
        Archive {
            dir: "security",
            origin: "Debian",
            label: "Debian-Security",
            suite: "bookworm-security",
            date: aptlab::days_ago(5),
            debs: vec![
                deb("unyo-demo-ssl", "1.0"),
                Deb {
                    urgency: Some("high"),
                    ..deb("unyo-demo-ssl", "1.1")
                },
            ],
        },
        Archive {
            dir: "updates",
            origin: "Debian",
            label: "Debian",
            suite: "bookworm-updates",
            date: aptlab::days_ago(1),
            debs: vec![deb("unyo-demo-tz", "1.0"), deb("unyo-demo-tz", "2.0")],
        },
    ];
    let _ = std::fs::remove_dir_all(&dir);
    let dirs = aptlab::build_archives(&dir, &archives)?;
    let sources: Vec<String> = dirs.iter().map(|d| aptlab::source_line(d)).collect();
    let old = vec![
        aptlab::deb_file(&dir, "security", "unyo-demo-ssl", "1.0"),
        aptlab::deb_file(&dir, "updates", "unyo-demo-tz", "1.0"),
    ];
    for h in hosts {
        let root = dir.join(format!("{h}-root"));
        aptlab::host_root(&root, &sources, &old)?;
        println!("{}", root.display());
    }
    Ok(())
}
