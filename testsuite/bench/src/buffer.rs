//! The input buffer: page-aligned (4 KiB), so programs may load u32/u64
//! values from it and every run of every engine sees the same address
//! alignment (the allocator's placement of large blocks otherwise varies
//! within a process, and with it the timing of the 1 MiB loops).

const PAGE: usize = 4096;

pub struct Buffer {
    words: Vec<u64>,
    /// Index of the first byte of the buffer in `words`' storage.
    start: usize,
    len: usize,
}

impl Buffer {
    pub fn zeroed(len: usize) -> Buffer {
        let words = vec![0u64; (len + PAGE).div_ceil(8)];
        let addr = words.as_ptr() as usize;
        let start = addr.next_multiple_of(PAGE) - addr;
        Buffer { words, start, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        debug_assert!(self.start + self.len <= self.words.len() * 8);
        // SAFETY: `words` holds `start + len` or more initialised bytes (it
        // was sized with a page of slack), u8 has no alignment or validity
        // requirements, and the slice borrows `self` mutably, so nothing else
        // reaches the storage meanwhile. The Vec is never resized, so the
        // page-aligned start computed at creation stays valid.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.words.as_mut_ptr().cast::<u8>().add(self.start),
                self.len,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_aligned_and_sized() {
        for len in [0, 1, 8, 4095, 4096, 1 << 21] {
            let mut b = Buffer::zeroed(len);
            let s = b.bytes_mut();
            assert_eq!(s.len(), len);
            assert_eq!(s.as_ptr() as usize % PAGE, 0);
            assert!(s.iter().all(|&x| x == 0));
        }
    }
}
