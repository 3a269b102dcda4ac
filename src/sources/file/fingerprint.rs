//! Which file is which: a file is known by a checksum of its first bytes,
//! not by its name or its inode.
//!
//! Names change (logrotate renames `app.log` to `app.log.1`) and inodes are
//! reused (delete a file and create another: ext4 often hands out the same
//! number), so neither says whether a file found now is one read before.
//! Its first bytes do: a log file's head never changes while it grows, and
//! a new file (or one truncated and written again) starts with other lines.
//! So, as Vector's `checksum` fingerprint does, a file is known by the
//! CRC32C of `bytes` bytes of its head (after `ignored_header_bytes`, for
//! files that all start with the same header).
//!
//! A file shorter than that window has no such checksum yet: until it has,
//! it is known by its device and inode *and* the checksum of the head it
//! has, which must still be there (as a prefix) for a file to be the same.
//! Its fingerprint grows with it, up to the full window.

use std::fs::File;
use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

/// The part of a file a fingerprint covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bytes of the head skipped before the checksum starts.
    pub ignored: u64,
    /// Bytes the checksum covers.
    pub bytes: NonZeroUsize,
}

/// Which file a checkpoint is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fingerprint {
    /// The checksum of the whole window: the file is at least that long.
    Checksum { crc: u32 },
    /// A file shorter than the window: its device and inode, and the
    /// checksum of the `len` bytes it had (after the ignored header).
    Inode {
        dev: u64,
        inode: u64,
        len: u64,
        crc: u32,
    },
}

impl Fingerprint {
    /// The key of its checkpoint: one checkpoint per fingerprint.
    pub fn key(&self) -> String {
        match self {
            Self::Checksum { crc } => format!("crc-{crc:08x}"),
            Self::Inode { dev, inode, .. } => inode_key(*dev, *inode),
        }
    }
}

/// The key of checkpoints of files shorter than the window with this
/// device and inode.
pub fn inode_key(dev: u64, inode: u64) -> String {
    format!("ino-{dev}-{inode}")
}

/// A device and an inode: the file an open handle or a path is.
pub type Identity = (u64, u64);

/// What a file holds at its start, read without moving its position.
#[derive(Debug, Clone)]
pub struct Head {
    /// The file's device and inode.
    pub id: Identity,
    /// The bytes after the ignored header, at most the window.
    bytes: Vec<u8>,
}

impl Head {
    /// Reads the head of an open file.
    pub fn read(file: &File, id: Identity, window: Window) -> std::io::Result<Self> {
        let mut bytes = vec![0; window.bytes.get()];
        let mut filled = 0;
        while filled < bytes.len() {
            match read_at(file, &mut bytes[filled..], window.ignored + filled as u64) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        bytes.truncate(filled);
        Ok(Self { id, bytes })
    }

    #[cfg(test)]
    pub fn of(id: Identity, bytes: &[u8]) -> Self {
        Self {
            id,
            bytes: bytes.to_vec(),
        }
    }

    /// Its fingerprint: the checksum when the window is full, else the
    /// inode with the checksum of what there is.
    pub fn fingerprint(&self, window: Window) -> Fingerprint {
        if self.bytes.len() >= window.bytes.get() {
            Fingerprint::Checksum {
                crc: crc32c::crc32c(&self.bytes[..window.bytes.get()]),
            }
        } else {
            Fingerprint::Inode {
                dev: self.id.0,
                inode: self.id.1,
                len: self.bytes.len() as u64,
                crc: crc32c::crc32c(&self.bytes),
            }
        }
    }

    /// Whether this is the head of the file `fingerprint` was taken of
    /// (maybe since grown).
    pub fn matches(&self, fingerprint: &Fingerprint, window: Window) -> bool {
        match *fingerprint {
            Fingerprint::Checksum { crc } => {
                self.bytes.len() >= window.bytes.get()
                    && crc32c::crc32c(&self.bytes[..window.bytes.get()]) == crc
            }
            Fingerprint::Inode {
                dev,
                inode,
                len,
                crc,
            } => {
                (dev, inode) == self.id
                    && self.bytes.len() as u64 >= len
                    && crc32c::crc32c(&self.bytes[..len as usize]) == crc
            }
        }
    }
}

#[cfg(unix)]
fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buffer, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buffer, offset)
}

/// The device and inode of a file (zeros where there are none).
pub fn identity(metadata: &std::fs::Metadata) -> Identity {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (metadata.dev(), metadata.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(bytes: usize) -> Window {
        Window {
            ignored: 0,
            bytes: NonZeroUsize::new(bytes).unwrap(),
        }
    }

    #[test]
    fn a_full_window_is_known_by_its_checksum_wherever_it_lives() {
        let head = Head::of((1, 10), b"first line\n");
        let moved = Head::of((2, 20), b"first line\nsecond line\n");
        let fingerprint = head.fingerprint(window(8));
        assert!(matches!(fingerprint, Fingerprint::Checksum { .. }));
        assert!(moved.matches(&fingerprint, window(8)));
        assert!(!Head::of((1, 10), b"other line\n").matches(&fingerprint, window(8)));
    }

    #[test]
    fn a_short_file_is_known_by_its_inode_and_the_head_it_had() {
        let head = Head::of((1, 10), b"abc");
        let fingerprint = head.fingerprint(window(8));
        assert_eq!(fingerprint.key(), inode_key(1, 10));
        assert!(Head::of((1, 10), b"abcdefghij").matches(&fingerprint, window(8)));
        // The same inode reused by a file with another start.
        assert!(!Head::of((1, 10), b"xyz").matches(&fingerprint, window(8)));
        // Truncated below what it had.
        assert!(!Head::of((1, 10), b"ab").matches(&fingerprint, window(8)));
        // Another file with the same start.
        assert!(!Head::of((1, 11), b"abc").matches(&fingerprint, window(8)));
    }

    #[test]
    fn the_ignored_header_is_left_out_of_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "HEADER 1\nline a\n").unwrap();
        std::fs::write(&b, "HEADER 2\nline a\nmore\n").unwrap();
        let window = Window {
            ignored: 9,
            bytes: NonZeroUsize::new(6).unwrap(),
        };
        let head = |path| Head::read(&File::open(path).unwrap(), (0, 0), window).unwrap();
        assert_eq!(head(&a).fingerprint(window), head(&b).fingerprint(window));
    }
}
