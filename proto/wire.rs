// SPDX-License-Identifier: GPL-2.0

//! Building blocks of the wire structs: little-endian integers, the
//! [`Field`] codec and the [`wire_struct!`] macro.
//!
//! A wire struct is a `#[repr(C)]` Rust struct whose size and field offsets
//! are asserted at compile time against the upstream C layout, and whose
//! bytes are produced and consumed field by field (no transmutes, so no
//! `unsafe` and no alignment requirement on receive buffers).  Encoding starts
//! from zeroes, so padding and reserved bytes never carry stale memory.

/// Why bytes could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the structure needs.
    Short {
        /// Bytes the structure needs.
        need: usize,
        /// Bytes that were there.
        got: usize,
    },
    /// A field holds a value the protocol does not define.
    BadValue {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
}

/// A fixed-size value with a byte codec.
pub trait Field: Sized + Copy {
    /// Bytes on the wire.
    const SIZE: usize;
    /// Decodes from exactly `SIZE` bytes.
    fn read(b: &[u8]) -> Self;
    /// Encodes into exactly `SIZE` bytes.
    fn write(&self, b: &mut [u8]);
}

impl Field for u8 {
    const SIZE: usize = 1;
    fn read(b: &[u8]) -> Self {
        b[0]
    }
    fn write(&self, b: &mut [u8]) {
        b[0] = *self;
    }
}

impl<const N: usize> Field for [u8; N] {
    const SIZE: usize = N;
    fn read(b: &[u8]) -> Self {
        let mut a = [0u8; N];
        a.copy_from_slice(&b[..N]);
        a
    }
    fn write(&self, b: &mut [u8]) {
        b[..N].copy_from_slice(self);
    }
}

macro_rules! le_int {
    ($(#[$m:meta])* $name:ident, $t:ty) => {
        $(#[$m])*
        ///
        /// Holds the little-endian representation, like the kernel's
        /// `__le` types, and has the same alignment as the C field.
        #[repr(transparent)]
        #[derive(Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name($t);

        impl $name {
            /// From a host-order value.
            pub const fn new(v: $t) -> Self {
                Self(v.to_le())
            }
            /// The host-order value.
            pub const fn get(self) -> $t {
                <$t>::from_le(self.0)
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{:#x}", self.get())
            }
        }

        impl Field for $name {
            const SIZE: usize = core::mem::size_of::<$t>();
            fn read(b: &[u8]) -> Self {
                let mut a = [0u8; core::mem::size_of::<$t>()];
                a.copy_from_slice(&b[..Self::SIZE]);
                Self::new(<$t>::from_le_bytes(a))
            }
            fn write(&self, b: &mut [u8]) {
                b[..Self::SIZE].copy_from_slice(&self.get().to_le_bytes());
            }
        }
    };
}

le_int!(/// `__le16`.
    Le16, u16);
le_int!(/// `__le32`.
    Le32, u32);
le_int!(/// `__le64`.
    Le64, u64);

/// Defines a wire struct: `#[repr(C)]`, size and every offset asserted at
/// compile time, `from_bytes`/`to_bytes`, and [`Field`] so it can nest.
///
/// Every field is written as `name: Type = offset`, the offset being the
/// upstream C one; the assertions then fail the build if the Rust layout and
/// the upstream one disagree.
#[macro_export]
macro_rules! wire_struct {
    (
        $(#[$m:meta])*
        pub struct $name:ident ($size:expr) {
            $( $(#[$fm:meta])* pub $f:ident : $t:ty = $off:expr ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fm])* pub $f: $t, )*
        }

        const _: () = assert!(core::mem::size_of::<$name>() == $size);
        $( const _: () = assert!(core::mem::offset_of!($name, $f) == $off); )*

        impl $name {
            /// Size on the wire (upstream `sizeof`).
            pub const SIZE: usize = $size;

            /// Decodes the first `SIZE` bytes of `b`.  Only checks the
            /// length; values are checked by the typed accessors.
            pub fn from_bytes(b: &[u8]) -> core::result::Result<Self, $crate::wire::WireError> {
                if b.len() < $size {
                    return Err($crate::wire::WireError::Short { need: $size, got: b.len() });
                }
                Ok(<Self as $crate::wire::Field>::read(b))
            }

            /// Encodes; padding and unused bytes are zero.
            pub fn to_bytes(&self) -> [u8; $size] {
                let mut b = [0u8; $size];
                <Self as $crate::wire::Field>::write(self, &mut b);
                b
            }

            /// All fields zero.
            pub fn zeroed() -> Self {
                <Self as $crate::wire::Field>::read(&[0u8; $size])
            }
        }

        impl $crate::wire::Field for $name {
            const SIZE: usize = $size;
            fn read(b: &[u8]) -> Self {
                Self { $( $f: <$t as $crate::wire::Field>::read(&b[$off..$off + <$t as $crate::wire::Field>::SIZE]), )* }
            }
            fn write(&self, b: &mut [u8]) {
                $( <$t as $crate::wire::Field>::write(&self.$f, &mut b[$off..$off + <$t as $crate::wire::Field>::SIZE]); )*
            }
        }
    };
}

/// The bytes of `s` up to its first NUL, if there is one.  Names on the wire
/// are fixed arrays the peer fills; a name without its terminator is
/// malformed, never read past.
pub fn c_str(s: &[u8]) -> Option<&[u8]> {
    s.iter().position(|&c| c == 0).map(|n| &s[..n])
}

/// Copies `name` into a zeroed fixed array, leaving room for the NUL.
pub fn put_c_str<const N: usize>(name: &[u8]) -> Option<[u8; N]> {
    if name.len() >= N || name.contains(&0) {
        return None;
    }
    let mut a = [0u8; N];
    a[..name.len()].copy_from_slice(name);
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_roundtrip() {
        let mut b = [0u8; 8];
        Le64::new(0x0102030405060708).write(&mut b);
        assert_eq!(b, [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(Le16::read(&[0x34, 0x12]).get(), 0x1234);
    }

    #[test]
    fn c_strings() {
        assert_eq!(c_str(b"abc\0def"), Some(&b"abc"[..]));
        assert_eq!(c_str(b"abc"), None);
        assert_eq!(put_c_str::<4>(b"abc"), Some(*b"abc\0"));
        assert_eq!(put_c_str::<4>(b"abcd"), None);
        assert_eq!(put_c_str::<4>(b"a\0"), None);
    }
}
