//! Crockford base32: the alphabet, strict symbol checks and a bit-packing encoder.

/// Upper-case Crockford alphabet (no `I`, `L`, `O`, `U`).
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The canonical (upper-case) symbol for an ASCII byte, or `None` if the byte is
/// not a Crockford symbol in either case. `I L O U` are rejected (no aliasing).
pub fn canonical_symbol(b: u8) -> Option<u8> {
    let up = b.to_ascii_uppercase();
    ALPHABET.contains(&up).then_some(up)
}

/// Encodes the first `5 * chars` bits of `bytes` (big-endian bit order).
///
/// Panics in debug if `bytes` holds fewer bits than requested; callers pass
/// fixed-size arrays sized for their symbol count.
pub fn encode_bits(bytes: &[u8], chars: usize) -> String {
    debug_assert!(bytes.len() * 8 >= chars * 5);
    let mut out = String::with_capacity(chars);
    for i in 0..chars {
        let mut v = 0u8;
        for j in 0..5 {
            let bit = i * 5 + j;
            let set = bytes.get(bit / 8).is_some_and(|b| b & (0x80 >> (bit % 8)) != 0);
            v = (v << 1) | u8::from(set);
        }
        out.push(ALPHABET[usize::from(v)] as char);
    }
    out
}

/// Encodes a `u128` as 26 symbols (130 bits, the top two always zero).
pub fn encode_u128(value: u128) -> String {
    (0..26)
        .map(|i| {
            let shift = 5 * (25 - i);
            let v = if shift >= 128 { 0 } else { (value >> shift) & 31 };
            ALPHABET[v as usize] as char
        })
        .collect()
}

/// Checks that `s` is exactly `len` Crockford symbols (any case) and returns the
/// canonical upper-case bytes.
pub fn parse_symbols<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() != N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = canonical_symbol(*b)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // claim: posture.key-format
    #[test]
    fn rejects_ambiguous_letters() {
        for b in b"IiLlOoUu" {
            assert_eq!(canonical_symbol(*b), None, "{}", *b as char);
        }
        assert_eq!(canonical_symbol(b'a'), Some(b'A'));
        assert_eq!(canonical_symbol(b'z'), Some(b'Z'));
    }

    #[test]
    fn encode_bits_known_values() {
        assert_eq!(encode_bits(&[0xff, 0xff], 3), "ZZZ");
        assert_eq!(encode_bits(&[0x00, 0x00], 3), "000");
        // 0b00001_00010_... = "12"
        assert_eq!(encode_bits(&[0b0000_1000, 0b1000_0000], 2), "12");
    }

    #[test]
    fn encode_u128_is_sortable() {
        assert!(encode_u128(1) < encode_u128(2));
        assert!(encode_u128(u128::MAX - 1) < encode_u128(u128::MAX));
        assert_eq!(encode_u128(0).len(), 26);
        assert_eq!(encode_u128(u128::MAX).len(), 26);
    }
}
