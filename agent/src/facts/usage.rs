//! Filesystem usage as the facts report it, on every platform: coarse, and steady at a step's
//! edge, so that a busy filesystem does not rewrite the facts on every collection.

use unyo_crds::server::ObservedFilesystem;

/// Used bytes rounded down to a step of 0.1% of the size (at least 1 MiB), so that the
/// constant small changes of a live filesystem do not rewrite the facts; the Disk check
/// measures usage exactly.
pub fn coarse_used(used: u64, size: u64) -> u64 {
    let step = (size / 1000).max(1 << 20);
    used - used % step
}

/// Keeps the usage reported before for each filesystem whose new coarse usage is only one
/// step away from it: a filesystem that hovers at a step's edge would otherwise rewrite the
/// facts on every collection.
pub fn steady_usage(before: &[ObservedFilesystem], now: &mut [ObservedFilesystem]) {
    for fs in now.iter_mut() {
        let Some(prev) = before.iter().find(|b| b.mount_point == fs.mount_point) else {
            continue;
        };
        if let (Some(p), Some(n), Some(size)) = (prev.used_bytes, fs.used_bytes, fs.size_bytes)
            && prev.size_bytes == fs.size_bytes
            && p.abs_diff(n) <= (size / 1000).max(1 << 20)
        {
            fs.used_bytes = Some(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_one_step_away_keeps_what_was_reported() {
        let fs = |used: u64| ObservedFilesystem {
            mount_point: "/".into(),
            device: None,
            fs_type: None,
            size_bytes: Some(100_000_000_000),
            used_bytes: Some(used),
        };
        let before = [fs(30_000_000_000)];
        // One step up or down (the edge crossed back and forth): unchanged.
        for used in [30_100_000_000, 29_900_000_000] {
            let mut now = [fs(used)];
            steady_usage(&before, &mut now);
            assert_eq!(now[0].used_bytes, Some(30_000_000_000));
        }
        // Two steps: a real change is reported.
        let mut now = [fs(30_200_000_000)];
        steady_usage(&before, &mut now);
        assert_eq!(now[0].used_bytes, Some(30_200_000_000));
    }

    #[test]
    fn used_bytes_are_coarse() {
        let size = 100_000_000_000;
        assert_eq!(coarse_used(30_000_123_456, size), 30_000_000_000);
        assert_eq!(coarse_used(30_099_999_999, size), 30_000_000_000);
        assert_eq!(coarse_used(30_100_000_000, size), 30_100_000_000);
        assert_eq!(coarse_used(5_000_000, 10_000_000), 4_194_304);
    }
}
