//! The benchmark programs: their eBPF bytecode (built by programs/build.sh
//! and committed), the same C compiled natively by build.rs, and the input
//! each run gets.

use crate::buffer::Buffer;

/// The native build of a program: `u64 f(u8 *buf, u64 len)`.
pub type NativeFn = unsafe extern "C" fn(*mut u8, u64) -> u64;

extern "C" {
    fn bench_native_primes(buf: *mut u8, len: u64) -> u64;
    fn bench_native_memcpy(buf: *mut u8, len: u64) -> u64;
    fn bench_native_strcmp(buf: *mut u8, len: u64) -> u64;
    fn bench_native_switch64(buf: *mut u8, len: u64) -> u64;
    fn bench_native_log2(buf: *mut u8, len: u64) -> u64;
    fn bench_native_bubble(buf: *mut u8, len: u64) -> u64;
    fn bench_native_bubble_stack(buf: *mut u8, len: u64) -> u64;
    fn bench_native_crc32(buf: *mut u8, len: u64) -> u64;
}

#[cfg(bench_clang_native)]
extern "C" {
    fn bench_clang_primes(buf: *mut u8, len: u64) -> u64;
    fn bench_clang_memcpy(buf: *mut u8, len: u64) -> u64;
    fn bench_clang_strcmp(buf: *mut u8, len: u64) -> u64;
    fn bench_clang_switch64(buf: *mut u8, len: u64) -> u64;
    fn bench_clang_log2(buf: *mut u8, len: u64) -> u64;
    fn bench_clang_bubble(buf: *mut u8, len: u64) -> u64;
    fn bench_clang_bubble_stack(buf: *mut u8, len: u64) -> u64;
    fn bench_clang_crc32(buf: *mut u8, len: u64) -> u64;
}

/// The clang-19 native build of a program, when build.rs made one.
macro_rules! clang {
    ($f:ident) => {{
        #[cfg(bench_clang_native)]
        let f: Option<NativeFn> = Some($f);
        #[cfg(not(bench_clang_native))]
        let f: Option<NativeFn> = None;
        f
    }};
}

/// One row of the benchmark: a program and the input it runs on.
pub struct Program {
    /// Row label.
    pub name: &'static str,
    /// The raw eBPF instructions (section "bench" of programs/NAME.o).
    pub bytecode: &'static [u8],
    pub native: NativeFn,
    /// The same C built by clang-19 -O2, if available.
    pub clang_native: Option<NativeFn>,
    /// Builds the input buffer (deterministic).
    pub input: fn() -> Buffer,
}

const MIB: usize = 1 << 20;

pub fn all() -> Vec<Program> {
    vec![
        Program {
            name: "primes",
            bytecode: include_bytes!("../programs/primes.bin"),
            native: bench_native_primes,
            clang_native: clang!(bench_clang_primes),
            input: primes_input,
        },
        Program {
            name: "memcpy",
            bytecode: include_bytes!("../programs/memcpy.bin"),
            native: bench_native_memcpy,
            clang_native: clang!(bench_clang_memcpy),
            input: memcpy_input,
        },
        Program {
            name: "strcmp_diff",
            bytecode: include_bytes!("../programs/strcmp.bin"),
            native: bench_native_strcmp,
            clang_native: clang!(bench_clang_strcmp),
            input: || strcmp_input(true),
        },
        Program {
            name: "strcmp_equal",
            bytecode: include_bytes!("../programs/strcmp.bin"),
            native: bench_native_strcmp,
            clang_native: clang!(bench_clang_strcmp),
            input: || strcmp_input(false),
        },
        Program {
            name: "switch64",
            bytecode: include_bytes!("../programs/switch64.bin"),
            native: bench_native_switch64,
            clang_native: clang!(bench_clang_switch64),
            input: switch_input,
        },
        Program {
            name: "log2",
            bytecode: include_bytes!("../programs/log2.bin"),
            native: bench_native_log2,
            clang_native: clang!(bench_clang_log2),
            input: log2_input,
        },
        Program {
            name: "bubble",
            bytecode: include_bytes!("../programs/bubble.bin"),
            native: bench_native_bubble,
            clang_native: clang!(bench_clang_bubble),
            input: bubble_input,
        },
        Program {
            name: "bubble_stack",
            bytecode: include_bytes!("../programs/bubble_stack.bin"),
            native: bench_native_bubble_stack,
            clang_native: clang!(bench_clang_bubble_stack),
            input: bubble_stack_input,
        },
        Program {
            name: "crc32",
            bytecode: include_bytes!("../programs/crc32.bin"),
            native: bench_native_crc32,
            clang_native: clang!(bench_clang_crc32),
            input: crc32_input,
        },
    ]
}

/// xorshift64*: a small deterministic generator for the inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn primes_input() -> Buffer {
    let mut b = Buffer::zeroed(8);
    b.bytes_mut()[..4].copy_from_slice(&10_000u32.to_le_bytes());
    b
}

fn memcpy_input() -> Buffer {
    let mut b = Buffer::zeroed(2 * MIB);
    let mut rng = Rng::new(1);
    for x in &mut b.bytes_mut()[..MIB] {
        *x = rng.next_u64() as u8;
    }
    b
}

/// Two NUL-terminated strings of 1 MiB (with the NUL) of letters; when
/// `differ`, the second differs from the first at byte 512 Ki.
fn strcmp_input(differ: bool) -> Buffer {
    let mut b = Buffer::zeroed(2 * MIB);
    let mut rng = Rng::new(2);
    let bytes = b.bytes_mut();
    for i in 0..MIB - 1 {
        let c = b'a' + rng.below(26) as u8;
        bytes[i] = c;
        bytes[MIB + i] = c;
    }
    if differ {
        let mid = MIB + MIB / 2;
        bytes[mid] = if bytes[mid] == b'z' {
            b'a'
        } else {
            bytes[mid] + 1
        };
    }
    b
}

fn switch_input() -> Buffer {
    words32(3, 16_384, |r| r.next_u64() as u32)
}

fn log2_input() -> Buffer {
    let n = 8192;
    let mut b = Buffer::zeroed(n * 8);
    let mut rng = Rng::new(4);
    for chunk in b.bytes_mut().chunks_exact_mut(8) {
        let shift = rng.below(64);
        let v = rng.next_u64() >> shift;
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    b
}

/// 256 random u32 followed by a 256-value work area.
fn bubble_input() -> Buffer {
    let mut b = words32(5, 512, |r| r.next_u64() as u32);
    for x in &mut b.bytes_mut()[256 * 4..] {
        *x = 0;
    }
    b
}

fn bubble_stack_input() -> Buffer {
    words32(6, 96, |r| r.next_u64() as u32)
}

fn crc32_input() -> Buffer {
    let mut b = Buffer::zeroed(4096);
    let mut rng = Rng::new(7);
    for x in b.bytes_mut() {
        *x = rng.next_u64() as u8;
    }
    b
}

fn words32(seed: u64, n: usize, mut f: impl FnMut(&mut Rng) -> u32) -> Buffer {
    let mut b = Buffer::zeroed(n * 4);
    let mut rng = Rng::new(seed);
    for chunk in b.bytes_mut().chunks_exact_mut(4) {
        chunk.copy_from_slice(&f(&mut rng).to_le_bytes());
    }
    b
}

/// CRC-32 (IEEE) computed here, to check the C program independently.
#[cfg(test)]
pub fn crc32_reference(data: &[u8]) -> u64 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & 0u32.wrapping_sub(crc & 1));
        }
    }
    u64::from(!crc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(name: &str) -> u64 {
        let p = all().into_iter().find(|p| p.name == name).unwrap();
        let mut buf = (p.input)();
        let len = buf.len() as u64;
        // SAFETY: the buffer is the program's own input, len bytes long.
        unsafe { (p.native)(buf.bytes_mut().as_mut_ptr(), len) }
    }

    #[test]
    fn native_results_match_independent_references() {
        assert_eq!(native("primes"), 1229);
        assert_eq!(native("crc32"), crc32_reference(crc32_input().bytes_mut()));
        assert_eq!(native("strcmp_equal"), ((MIB as u64) - 1) << 8);
        assert_eq!(native("strcmp_diff") >> 8, (MIB / 2) as u64);
    }

    #[test]
    fn bytecode_is_whole_instructions() {
        for p in all() {
            assert!(
                !p.bytecode.is_empty() && p.bytecode.len() % 8 == 0,
                "{}",
                p.name
            );
        }
    }
}
