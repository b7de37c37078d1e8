//! Byte and bit cursors with checked reads, LEB128 varints and CRC-32.
//!
//! Bits are packed most significant bit first (docs/FORMAT.md, "Conventions").

use crate::CodecError;

/// CRC-32/IEEE (the CRC of zlib, PNG and gzip): `crc32(b"123456789") == 0xCBF43926`.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c = TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// Number of bytes of the LEB128 varint of `x`.
pub fn vlen(x: u64) -> usize {
    (64 - (x | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends the LEB128 varint of `x`.
pub fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8 & 0x7F) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// A cursor over the bytes of one section that never reads past the end.
pub struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Section name for errors.
    pub section: &'a str,
}

impl<'a> ByteReader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8], section: &'a str) -> Self {
        ByteReader { bytes, pos: 0, section }
    }

    /// Offset of the next byte.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::Truncated {
                section: self.section.to_string(),
                what,
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        s
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    /// A little-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A minimal LEB128 varint.
    pub fn varint(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let mut x = 0u64;
        for i in 0..10 {
            let b = self.u8(what)?;
            let group = (b & 0x7F) as u64;
            if i == 9 && b > 1 {
                return Err(CodecError::range(self.section, what, "varint exceeds 64 bits"));
            }
            x |= group << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(CodecError::range(self.section, what, "non-minimal varint"));
                }
                return Ok(x);
            }
        }
        Err(CodecError::range(self.section, what, "varint longer than 10 bytes"))
    }

    /// A varint that must be at most `max`, as usize.
    pub fn varint_max(&mut self, what: &'static str, max: u64) -> Result<usize, CodecError> {
        let x = self.varint(what)?;
        if x > max {
            return Err(CodecError::range(self.section, what, format!("{x} > {max}")));
        }
        usize::try_from(x).map_err(|_| CodecError::range(self.section, what, format!("{x} > usize")))
    }
}

/// Packs bits most significant first.
#[derive(Default)]
pub struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the low `width` bits of `value` (width <= 32), highest first.
    pub fn put(&mut self, value: u32, width: u32) {
        debug_assert!(width <= 32 && (width == 32 || value >> width == 0));
        if width == 0 {
            return;
        }
        self.acc = (self.acc << width) | value as u64;
        self.n += width;
        while self.n >= 8 {
            self.n -= 8;
            self.out.push((self.acc >> self.n) as u8);
        }
        self.acc &= (1u64 << self.n) - 1;
    }

    /// The bytes, the last one padded with zero bits.
    pub fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push((self.acc << (8 - self.n)) as u8);
        }
        self.out
    }
}

/// Reads bits most significant first from a byte slice, never past its end.
pub struct BitReader<'a> {
    bytes: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit.
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, bit: 0 }
    }

    /// One bit, `None` at the end.
    #[inline]
    pub fn bit(&mut self) -> Option<u32> {
        let byte = *self.bytes.get(self.bit >> 3)?;
        let b = (byte >> (7 - (self.bit & 7))) & 1;
        self.bit += 1;
        Some(b as u32)
    }

    /// `width` bits (<= 32) as a number, `None` if fewer are left.
    pub fn bits(&mut self, width: u32) -> Option<u32> {
        if self.bit + width as usize > self.bytes.len() * 8 {
            return None;
        }
        let mut v = 0u64;
        for _ in 0..width {
            v = (v << 1) | self.bit()? as u64;
        }
        Some(v as u32)
    }

    /// Bits consumed so far.
    pub fn consumed(&self) -> usize {
        self.bit
    }

    /// Checks that the reader stopped within the last byte and the padding bits are zero:
    /// the stream is exactly `ceil(consumed / 8)` bytes.
    pub fn finish(&self) -> Result<(), String> {
        let used = self.bit.div_ceil(8);
        if used != self.bytes.len() {
            return Err(format!("{} bytes stored, {} used", self.bytes.len(), used));
        }
        let pad = (8 - self.bit % 8) % 8;
        if pad > 0 && self.bytes[used - 1] & ((1u8 << pad) - 1) != 0 {
            return Err("non-zero padding bits".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn varint_round_trip_and_length() {
        for x in [0u64, 1, 127, 128, 300, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let mut v = Vec::new();
            put_varint(&mut v, x);
            assert_eq!(v.len(), vlen(x), "{x}");
            let mut r = ByteReader::new(&v, "t");
            assert_eq!(r.varint("x").unwrap(), x);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn varint_rejects_non_minimal_and_overlong() {
        assert!(ByteReader::new(&[0x80, 0x00], "t").varint("x").is_err());
        assert!(ByteReader::new(&[0xFF; 11], "t").varint("x").is_err());
        assert!(ByteReader::new(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02], "t")
            .varint("x")
            .is_err());
        assert!(ByteReader::new(&[0x80], "t").varint("x").is_err());
    }

    #[test]
    fn bits_round_trip() {
        let mut w = BitWriter::new();
        let vals = [(1u32, 1u32), (5, 3), (0, 0), (0xABCDE, 20), (u32::MAX, 32), (0, 2)];
        for &(v, n) in &vals {
            w.put(v, n);
        }
        let bytes = w.finish();
        assert_eq!(bytes.len(), (1 + 3 + 20 + 32 + 2usize).div_ceil(8));
        let mut r = BitReader::new(&bytes);
        for &(v, n) in &vals {
            assert_eq!(r.bits(n), Some(v));
        }
        r.finish().unwrap();
        assert_eq!(r.bits(7), None);
    }

    #[test]
    fn bit_reader_rejects_padding_and_extra_bytes() {
        let mut r = BitReader::new(&[0b1010_0001]);
        r.bits(3).unwrap();
        assert!(r.finish().is_err());
        let mut r = BitReader::new(&[0xFF, 0]);
        r.bits(8).unwrap();
        assert!(r.finish().is_err());
    }
}
