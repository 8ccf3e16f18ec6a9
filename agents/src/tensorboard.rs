//! A minimal TensorBoard event-file writer for scalars.
//!
//! TensorBoard reads TFRecord files of `Event` protocol buffers. Scalars need only a handful of
//! fields, encoded here by hand (no protobuf dependency): `Event { wall_time = 1 (double),
//! step = 2 (int64), file_version = 3 (string), summary = 5 }`, `Summary { value = 1 }`,
//! `Summary.Value { tag = 1 (string), simple_value = 2 (float) }`. Each record is
//! `len (u64 LE) | masked crc32c(len) | data | masked crc32c(data)`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends scalar summaries to one event file.
pub struct EventWriter {
    out: BufWriter<File>,
}

fn crc32c(data: &[u8]) -> u32 {
    // Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78); event records are few and small.
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn length_delimited(field: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push((field << 3) | 2);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn wall_time() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn event(step: i64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut e = Vec::new();
    e.push((1 << 3) | 1);
    e.extend_from_slice(&wall_time().to_le_bytes());
    e.push(2 << 3);
    varint(step as u64, &mut e);
    body(&mut e);
    e
}

impl EventWriter {
    /// Creates `dir/events.out.tfevents.<time>.keel` and writes the file-version header.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let file = File::create(dir.join(format!("events.out.tfevents.{secs}.keel")))?;
        let mut writer = Self { out: BufWriter::new(file) };
        writer.record(&event(0, |e| length_delimited(3, b"brain.Event:2", e)))?;
        Ok(writer)
    }

    fn record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked_crc(&len).to_le_bytes())?;
        self.out.write_all(data)?;
        self.out.write_all(&masked_crc(data).to_le_bytes())
    }

    /// Writes scalars `(tag, value)` at `step`.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> std::io::Result<()> {
        let mut summary = Vec::new();
        for (tag, value) in values {
            if !value.is_finite() {
                continue;
            }
            let mut v = Vec::new();
            length_delimited(1, tag.as_bytes(), &mut v);
            v.push((2 << 3) | 5);
            v.extend_from_slice(&(*value as f32).to_le_bytes());
            length_delimited(1, &v, &mut summary);
        }
        let data = event(step as i64, |e| length_delimited(5, &summary, e));
        self.record(&data)
    }

    /// Flushes buffered records to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn varints_encode_like_protobuf() {
        let mut out = Vec::new();
        varint(300, &mut out);
        assert_eq!(out, [0xAC, 0x02]);
    }
}
