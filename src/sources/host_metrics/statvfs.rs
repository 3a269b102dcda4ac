//! Space on a mounted filesystem, from `statvfs(3)`: the one system call
//! `host_metrics` needs that `/proc` does not offer, and the only `unsafe`
//! code in it.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A filesystem's size, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Its whole size.
    pub total: u64,
    /// Not allocated to anything (including the blocks reserved for root).
    pub free: u64,
    /// What an unprivileged user may still write (`df`'s "Avail").
    pub available: u64,
}

impl Space {
    /// Percent used as `df` shows it: used / (used + available), so the
    /// blocks reserved for root count as neither, and 100% means a normal
    /// user cannot write. `None` for an empty filesystem.
    pub fn used_percent(&self) -> Option<f64> {
        let used = self.total.saturating_sub(self.free);
        let usable = used + self.available;
        (usable > 0).then(|| 100.0 * used as f64 / usable as f64)
    }
}

/// Asks the kernel how big the filesystem mounted at `path` is.
// The fields are u64 on 64-bit Linux but narrower elsewhere.
#[allow(clippy::useless_conversion)]
pub fn statvfs(path: &Path) -> io::Result<Space> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `path` is a NUL-terminated C string that lives across the
    // call; `stat` is writable memory of the type statvfs(3) fills in. It is
    // read only when the call reports success, which means the kernel
    // initialised all of it.
    let stat = unsafe {
        let mut stat = MaybeUninit::<libc::statvfs>::uninit();
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        stat.assume_init()
    };
    let block = u64::from(stat.f_frsize);
    Ok(Space {
        total: u64::from(stat.f_blocks).saturating_mul(block),
        free: u64::from(stat.f_bfree).saturating_mul(block),
        available: u64::from(stat.f_bavail).saturating_mul(block),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_filesystem_has_a_size() {
        let space = statvfs(Path::new("/")).unwrap();
        assert!(space.total > 0 && space.free <= space.total, "{space:?}");
        let used = space.used_percent().unwrap();
        assert!((0.0..=100.0).contains(&used), "{used}");
    }

    #[test]
    fn a_missing_path_is_an_error_not_a_crash() {
        assert!(statvfs(Path::new("/no/such/mount/point")).is_err());
        assert!(statvfs(Path::new("bad\0path")).is_err());
    }

    #[test]
    fn used_percent_matches_df() {
        // 100 blocks, 40 free of which 10 reserved for root: df shows
        // 60 used, 30 available, 67%.
        let space = Space {
            total: 100,
            free: 40,
            available: 30,
        };
        let used = space.used_percent().unwrap();
        assert!((used - 66.666).abs() < 0.01, "{used}");
        let empty = Space {
            total: 0,
            free: 0,
            available: 0,
        };
        assert_eq!(empty.used_percent(), None);
    }
}
