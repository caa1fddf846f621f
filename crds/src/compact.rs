//! A compact form of a host's installed packages, for caches that hold thousands of Servers.
//!
//! A fleet's hosts share most package names and versions, and a cache that keeps each as a
//! `String` pair holds the same bytes thousands of times (300 packages on 10,000 hosts are three
//! million strings). [`PackageSet`] keeps each pair as two `u32` symbols of one process-wide
//! interner: 8 bytes a package. The interner only grows, by the distinct names and versions the
//! process has seen, which a fleet's updates add to slowly.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use crate::server::ObservedPackage;

#[derive(Default)]
struct Interner {
    ids: HashMap<Arc<str>, u32>,
    strings: Vec<Arc<str>>,
}

static INTERNER: LazyLock<RwLock<Interner>> = LazyLock::new(Default::default);

fn intern(s: &str) -> u32 {
    if let Some(id) = INTERNER
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .ids
        .get(s)
    {
        return *id;
    }
    let mut w = INTERNER.write().unwrap_or_else(|e| e.into_inner());
    if let Some(id) = w.ids.get(s) {
        return *id;
    }
    let id = u32::try_from(w.strings.len()).unwrap_or(u32::MAX);
    let shared: Arc<str> = Arc::from(s);
    w.strings.push(shared.clone());
    w.ids.insert(shared, id);
    id
}

/// Installed packages as interned (name, version) symbols.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageSet(Arc<[(u32, u32)]>);

impl PackageSet {
    /// The compact form of `packages` (their architectures are not kept).
    pub fn of(packages: &[ObservedPackage]) -> PackageSet {
        PackageSet(
            packages
                .iter()
                .map(|p| (intern(&p.name), intern(&p.version)))
                .collect(),
        )
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
        let a = PackageSet::of(&list);
        let b = PackageSet::of(&list);
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        let back = a.expand();
        assert_eq!(back[0].name, "postgresql-15");
        assert_eq!(back[1].version, "2025b");
        assert!(back.iter().all(|p| p.architecture.is_none()));
        assert!(PackageSet::of(&[]).is_empty());
        assert_ne!(a, PackageSet::of(&[p("tzdata", "2025a")]));
    }
}
