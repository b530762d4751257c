//! The one signature check every message pays for: RSA PKCS#1 v1.5 with
//! SHA-1 (what fedmsg signs with), verified as RFC 8017 (8.2.2) says,
//! "encode and compare": raise the signature to the public exponent, then
//! compare the result byte for byte with the one valid encoding of the
//! digest. Nothing in the signature is parsed.
//!
//! Why not the `rsa` crate's `verify` (which relflow still uses for keys
//! and for the CA's signatures on certificates, once per signer): its
//! exponentiation is a general Montgomery ladder that took ~110 us of a
//! ~160 us verification with Fedora's 1024-bit keys. A public exponent is
//! public and tiny (65537: 16 squarings and one multiplication), so plain
//! square-and-multiply with `num-bigint` does the same in ~20 us.

use num_bigint::BigUint;
use rsa::traits::PublicKeyParts;

/// DER of `DigestInfo { sha1, NULL }` up to the digest (RFC 8017 9.2, note 1).
const SHA1_DIGEST_INFO: [u8; 15] =
    [0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14];

/// An RSA public key, ready for [`PublicKey::verify_sha1`].
#[derive(Debug)]
pub(crate) struct PublicKey {
    n: BigUint,
    e: BigUint,
    /// The modulus' length in bytes (`k` in RFC 8017).
    len: usize,
}

/// Smaller moduli are refused: 512-bit RSA has been factored for decades,
/// and Fedora's fedmsg certificates have 1024-bit keys or larger.
pub(crate) const MIN_BITS: u64 = 1024;

impl PublicKey {
    pub(crate) fn new(key: &rsa::RsaPublicKey) -> Result<PublicKey, String> {
        let n = BigUint::from_bytes_be(&key.n().to_bytes_be());
        let e = BigUint::from_bytes_be(&key.e().to_bytes_be());
        if n.bits() < MIN_BITS {
            return Err(format!("an RSA key of {} bits (at least {MIN_BITS} needed)", n.bits()));
        }
        // The rsa crate already refuses these; the exponentiation below
        // relies on it.
        if e < BigUint::from(3u8) || !e.bit(0) {
            return Err("an RSA key whose public exponent is not odd and at least 3".into());
        }
        Ok(PublicKey { len: n.bits().div_ceil(8) as usize, e, n })
    }

    /// Whether `signature` is this key's PKCS#1 v1.5 signature of a
    /// message whose SHA-1 is `digest`.
    pub(crate) fn verify_sha1(&self, digest: &[u8; 20], signature: &[u8]) -> bool {
        if signature.len() != self.len {
            return false;
        }
        let s = BigUint::from_bytes_be(signature);
        if s >= self.n {
            return false;
        }
        let m = self.raise(&s).to_bytes_be();
        // I2OSP(m, k) = m left-padded with zeros to k bytes; the encoding
        // starts with 0x00, so m is at most k - 1 bytes.
        match self.encoding(digest) {
            Some(em) => m.len() < em.len() && em[..em.len() - m.len()].iter().all(|&b| b == 0) && em.ends_with(&m),
            None => false,
        }
    }

    /// `s^e mod n`, left to right over the bits of `e`.
    fn raise(&self, s: &BigUint) -> BigUint {
        let mut x = s.clone();
        for bit in (0..self.e.bits().saturating_sub(1)).rev() {
            x = &x * &x % &self.n;
            if self.e.bit(bit) {
                x = x * s % &self.n;
            }
        }
        x
    }

    /// EMSA-PKCS1-v1_5 (RFC 8017 9.2): 00 01 FF..FF 00 DigestInfo digest,
    /// `k` bytes; `None` if the key is too short to hold it.
    fn encoding(&self, digest: &[u8; 20]) -> Option<Vec<u8>> {
        let t = SHA1_DIGEST_INFO.len() + digest.len();
        // At least 8 bytes of 0xFF padding.
        let padding = self.len.checked_sub(t + 3).filter(|p| *p >= 8)?;
        let mut em = Vec::with_capacity(self.len);
        em.extend([0x00, 0x01]);
        em.resize(2 + padding, 0xff);
        em.push(0x00);
        em.extend(SHA1_DIGEST_INFO);
        em.extend(digest);
        Some(em)
    }
}

#[cfg(test)]
mod tests {
    use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
    use sha1::{Digest, Sha1};

    use super::*;

    /// The `rsa` crate signs; this verifies, and agrees with its verify.
    #[test]
    fn agrees_with_the_rsa_crate_on_good_and_bad_signatures() {
        let mut rng = rsa::rand_core::OsRng;
        let three = rsa::BigUint::from(3u8);
        let keys = [
            RsaPrivateKey::new(&mut rng, 1024).unwrap(),
            RsaPrivateKey::new(&mut rng, 2048).unwrap(),
            RsaPrivateKey::new_with_exp(&mut rng, 1024, &three).unwrap(),
        ];
        for private in keys {
            let public = RsaPublicKey::from(&private);
            let bits = public.n().bits();
            let key = PublicKey::new(&public).unwrap();
            for message in [&b"hello"[..], b"", &[0u8; 300]] {
                let digest: [u8; 20] = Sha1::digest(message).into();
                let good = private.sign(Pkcs1v15Sign::new::<Sha1>(), &digest).unwrap();
                assert!(key.verify_sha1(&digest, &good), "{bits} bits");

                let mut other: [u8; 20] = digest;
                other[19] ^= 1;
                assert!(!key.verify_sha1(&other, &good), "another digest");
                for i in [0, good.len() / 2, good.len() - 1] {
                    let mut flipped = good.clone();
                    flipped[i] ^= 0x40;
                    let theirs = public.verify(Pkcs1v15Sign::new::<Sha1>(), &digest, &flipped).is_ok();
                    assert_eq!(key.verify_sha1(&digest, &flipped), theirs, "byte {i} flipped");
                    assert!(!theirs);
                }
                assert!(!key.verify_sha1(&digest, &good[1..]), "too short");
                assert!(!key.verify_sha1(&digest, &[good.as_slice(), &[0]].concat()), "too long");
                let n = public.n().to_bytes_be();
                assert!(!key.verify_sha1(&digest, &n), "s = n");
                let n_minus_1 = (public.n() - rsa::BigUint::from(1u8)).to_bytes_be();
                assert!(!key.verify_sha1(&digest, &n_minus_1), "s = n - 1");
                assert!(!key.verify_sha1(&digest, &vec![0u8; n.len()]), "s = 0");
            }
            // A SHA-256 signature of the same bytes is not a SHA-1 one.
            let digest: [u8; 20] = Sha1::digest(b"x").into();
            let sha256 = private.sign(Pkcs1v15Sign::new::<sha2::Sha256>(), &sha2::Sha256::digest(b"x")).unwrap();
            assert!(!key.verify_sha1(&digest, &sha256));
        }
    }

    #[test]
    fn short_keys_are_refused() {
        let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 512).unwrap();
        let e = PublicKey::new(&RsaPublicKey::from(&private)).unwrap_err();
        assert!(e.contains("512 bits (at least 1024 needed)"), "{e}");
    }
}
