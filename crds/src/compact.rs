//! A compact form of a host's installed packages, for caches that hold thousands of Servers.
//!
//! A fleet's hosts share most package names and versions, and a cache that keeps each as a
//! `String` pair holds the same bytes thousands of times (300 packages on 10,000 hosts are three
//! million strings). [`PackageSet`] keeps each pair as two `u32` symbols of one process-wide
//! interner: 8 bytes a package. The interner only grows, by the distinct names and versions the
//! process has seen, which a fleet's updates add to slowly; whoever writes a Server's facts could
//! send endless new strings, so it stops at [`MAX_SYMBOLS`], and packages that would need more
//! stay as they are.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use crate::server::ObservedPackage;

#[derive(Default)]
struct Interner {
    ids: HashMap<Arc<str>, u32>,
    strings: Vec<Arc<str>>,
}

static INTERNER: LazyLock<RwLock<Interner>> = LazyLock::new(Default::default);

/// The most distinct names and versions the interner holds.
pub const MAX_SYMBOLS: usize = 1 << 20;

fn intern(s: &str) -> Option<u32> {
    if let Some(id) = INTERNER
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .ids
        .get(s)
    {
        return Some(*id);
    }
    let mut w = INTERNER.write().unwrap_or_else(|e| e.into_inner());
    if let Some(id) = w.ids.get(s) {
        return Some(*id);
    }
    if w.strings.len() >= MAX_SYMBOLS {
        return None;
    }
    let id = u32::try_from(w.strings.len()).ok()?;
    let shared: Arc<str> = Arc::from(s);
    w.strings.push(shared.clone());
    w.ids.insert(shared, id);
    Some(id)
}

/// Installed packages as interned (name, version) symbols.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageSet(Arc<[(u32, u32)]>);

impl PackageSet {
    /// The compact form of `packages` (their architectures are not kept), or None when the
    /// interner is full.
    pub fn of(packages: &[ObservedPackage]) -> Option<PackageSet> {
        packages
            .iter()
            .map(|p| Some((intern(&p.name)?, intern(&p.version)?)))
            .collect::<Option<Arc<[(u32, u32)]>>>()
            .map(PackageSet)
    }

    /// The packages again, as name and version (without architecture).
    pub fn expand(&self) -> Vec<ObservedPackage> {
        let r = INTERNER.read().unwrap_or_else(|e| e.into_inner());
        let get = |id: u32| {
            r.strings
                .get(id as usize)
                .map(|s| s.to_string())
                .unwrap_or_default()
        };
        self.0
            .iter()
            .map(|&(n, v)| ObservedPackage {
                name: get(n),
                version: get(v),
                architecture: None,
            })
            .collect()
    }

    /// How many packages.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, version: &str) -> ObservedPackage {
        ObservedPackage {
            name: name.into(),
            version: version.into(),
            architecture: Some("amd64".into()),
        }
    }

    #[test]
    fn packages_round_trip_without_architecture_and_share_symbols() {
        let list = vec![p("postgresql-15", "15.10-0+deb12u1"), p("tzdata", "2025b")];
        let a = PackageSet::of(&list).unwrap();
        let b = PackageSet::of(&list).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        let back = a.expand();
        assert_eq!(back[0].name, "postgresql-15");
        assert_eq!(back[1].version, "2025b");
        assert!(back.iter().all(|p| p.architecture.is_none()));
        assert!(PackageSet::of(&[]).unwrap().is_empty());
        assert_ne!(a, PackageSet::of(&[p("tzdata", "2025a")]).unwrap());
    }
}
