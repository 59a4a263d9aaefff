//! An 8-byte-aligned input buffer, so programs may load u32/u64 values from it.

pub struct Buffer {
    words: Vec<u64>,
    len: usize,
}

impl Buffer {
    pub fn zeroed(len: usize) -> Buffer {
        Buffer {
            words: vec![0; len.div_ceil(8)],
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `words` holds at least `len` initialised bytes, u8 has no
        // alignment or validity requirements, and the returned slice borrows
        // `self` mutably, so nothing else can reach the storage meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
}
