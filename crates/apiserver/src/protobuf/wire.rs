//! A minimal reader for the protobuf wire format.
//!
//! Only what Kubernetes' proto2 messages use: varints, 64-bit and 32-bit fixed values and
//! length-delimited fields. Deprecated groups (wire types 3 and 4) are rejected.

use super::ProtobufError;

/// One field's value as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    /// A short name of the wire type, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            WireValue::Varint(_) => "varint",
            WireValue::Fixed64(_) => "fixed64",
            WireValue::Len(_) => "length-delimited",
            WireValue::Fixed32(_) => "fixed32",
        }
    }
}

/// Iterates over the `(field number, value)` pairs of one message.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Whether everything has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Reads one base-128 varint (at most ten bytes).
    pub(crate) fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value: u64 = 0;
        for (i, byte) in self.buf.iter().take(10).enumerate() {
            let bits = u64::from(byte & 0x7f);
            if i == 9 && bits > 1 {
                return Err(malformed("varint overflows 64 bits"));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        if self.buf.len() >= 10 {
            Err(malformed("varint longer than ten bytes"))
        } else {
            Err(malformed("truncated varint"))
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        if self.buf.len() < n {
            return Err(malformed(format!(
                "field needs {n} bytes, only {} left",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Reads the next field, or `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, ProtobufError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| (1..=536_870_911).contains(n))
            .ok_or_else(|| malformed(format!("invalid field number {}", key >> 3)))?;
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                WireValue::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let len = self.varint()?;
                let len =
                    usize::try_from(len).map_err(|_| malformed("length does not fit in memory"))?;
                WireValue::Len(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                WireValue::Fixed32(u32::from_le_bytes(a))
            }
            other => {
                return Err(malformed(format!(
                    "unsupported wire type {other} for field {number}"
                )))
            }
        };
        Ok(Some((number, value)))
    }
}

pub(crate) fn malformed(msg: impl Into<String>) -> ProtobufError {
    ProtobufError::Malformed(msg.into())
}

/// Builds wire-format bytes; used by the tests to construct messages field by field.
#[cfg(test)]
pub(crate) mod encode {
    pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    pub(crate) fn key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
        varint(out, (u64::from(number) << 3) | u64::from(wire_type));
    }

    /// A message under construction.
    #[derive(Default, Clone)]
    pub(crate) struct Msg(pub(crate) Vec<u8>);

    impl Msg {
        pub(crate) fn new() -> Self {
            Msg::default()
        }
        pub(crate) fn uint(mut self, number: u32, v: u64) -> Self {
            key(&mut self.0, number, 0);
            varint(&mut self.0, v);
            self
        }
        pub(crate) fn int(self, number: u32, v: i64) -> Self {
            self.uint(number, v as u64)
        }
        pub(crate) fn bytes(mut self, number: u32, v: &[u8]) -> Self {
            key(&mut self.0, number, 2);
            varint(&mut self.0, v.len() as u64);
            self.0.extend_from_slice(v);
            self
        }
        pub(crate) fn str(self, number: u32, v: &str) -> Self {
            self.bytes(number, v.as_bytes())
        }
        pub(crate) fn msg(self, number: u32, m: Msg) -> Self {
            self.bytes(number, &m.0)
        }
        pub(crate) fn fixed64(mut self, number: u32, v: u64) -> Self {
            key(&mut self.0, number, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        pub(crate) fn fixed32(mut self, number: u32, v: u32) -> Self {
            key(&mut self.0, number, 5);
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        /// A `map<string, string>` entry.
        pub(crate) fn entry(self, number: u32, k: &str, v: &str) -> Self {
            self.msg(number, Msg::new().str(1, k).str(2, v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::encode::{varint, Msg};
    use super::*;

    fn read_varint(bytes: &[u8]) -> Result<u64, ProtobufError> {
        Reader::new(bytes).varint()
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(read_varint(&out).ok(), Some(v), "{v}");
        }
        assert_eq!(read_varint(&[0xac, 0x02]).ok(), Some(300));
    }

    #[test]
    fn bad_varints_are_rejected() {
        assert!(read_varint(&[0x80, 0x80]).is_err());
        assert!(read_varint(&[]).is_err());
        assert!(read_varint(&[0xff; 11]).is_err());
        // Ten bytes whose last one carries more than the 64th bit.
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert!(read_varint(&over).is_err());
    }

    #[test]
    fn reads_every_wire_type() {
        let m = Msg::new()
            .uint(1, 150)
            .fixed64(2, 0x0102_0304_0506_0708)
            .str(3, "hi")
            .fixed32(4, 7);
        let mut r = Reader::new(&m.0);
        assert_eq!(r.next_field().ok(), Some(Some((1, WireValue::Varint(150)))));
        assert_eq!(
            r.next_field().ok(),
            Some(Some((2, WireValue::Fixed64(0x0102_0304_0506_0708))))
        );
        assert_eq!(r.next_field().ok(), Some(Some((3, WireValue::Len(b"hi")))));
        assert_eq!(r.next_field().ok(), Some(Some((4, WireValue::Fixed32(7)))));
        assert_eq!(r.next_field().ok(), Some(None));
    }

    #[test]
    fn truncation_and_bad_keys_are_errors() {
        // Length 5 but only 2 bytes follow.
        assert!(Reader::new(&[0x0a, 0x05, b'a', b'b']).next_field().is_err());
        // Fixed64 with 3 bytes.
        assert!(Reader::new(&[0x09, 1, 2, 3]).next_field().is_err());
        // Field number 0.
        assert!(Reader::new(&[0x00, 0x01]).next_field().is_err());
        // Group start (wire type 3).
        assert!(Reader::new(&[0x0b]).next_field().is_err());
        assert_eq!(WireValue::Len(b"").type_name(), "length-delimited");
    }
}
