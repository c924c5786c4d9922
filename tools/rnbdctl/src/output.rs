// SPDX-License-Identifier: GPL-2.0

//! Tables for people (aligned, sizes with units), CSV and JSON for scripts.

use serde::Serialize;
use std::io::Write;

/// How to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns, sizes and rates with units.
    Table,
    /// CSV with a header line; raw numbers.
    Csv,
    /// JSON: `{"schema_version": 1, "<kind>": [...]}`.
    Json,
}

/// Rows to print: a header, and per row its human and its raw cells.
pub struct Table {
    /// Column names (CSV header, table header).
    pub header: Vec<&'static str>,
    /// Cells for people (units).
    pub human: Vec<Vec<String>>,
    /// Cells for CSV (plain numbers).
    pub raw: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(header: Vec<&'static str>) -> Self {
        Table {
            header,
            human: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// Adds a row: `(human, raw)` per cell.
    pub fn row(&mut self, cells: Vec<(String, String)>) {
        let (h, r) = cells.into_iter().unzip();
        self.human.push(h);
        self.raw.push(r);
    }
}

/// A cell whose human and raw forms are the same.
pub fn same(s: impl ToString) -> (String, String) {
    let s = s.to_string();
    (s.clone(), s)
}

/// A size in bytes: "1.5 GiB" for people, the number for CSV.
pub fn size(bytes: u64) -> (String, String) {
    (human_size(bytes), bytes.to_string())
}

/// Bytes with a binary unit, one decimal below 10.
pub fn human_size(b: u64) -> String {
    const U: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{} B", b)
    } else if v < 10.0 {
        format!("{:.1} {}", v, U[i])
    } else {
        format!("{:.0} {}", v, U[i])
    }
}

/// A duration in ns: "1.2 ms" for people.
pub fn latency(ns: i64) -> (String, String) {
    let h = if ns.abs() >= 1_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else if ns.abs() >= 1_000 {
        format!("{:.1} us", ns as f64 / 1e3)
    } else {
        format!("{} ns", ns)
    };
    (h, ns.to_string())
}

/// Prints `t` as a table or CSV, or `json` (whatever `t` was made from,
/// under the key `kind`) as JSON.
pub fn print<T: Serialize>(
    out: &mut impl Write,
    fmt: Format,
    kind: &str,
    t: &Table,
    json: &T,
) -> std::io::Result<()> {
    match fmt {
        Format::Json => {
            let mut m = serde_json::Map::new();
            m.insert(
                "schema_version".into(),
                serde_json::Value::from(crate::model::SCHEMA_VERSION),
            );
            m.insert(
                kind.into(),
                serde_json::to_value(json).map_err(std::io::Error::other)?,
            );
            serde_json::to_writer_pretty(&mut *out, &m).map_err(std::io::Error::other)?;
            writeln!(out)
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(&t.header).map_err(std::io::Error::other)?;
            for r in &t.raw {
                w.write_record(r).map_err(std::io::Error::other)?;
            }
            w.flush()
        }
        Format::Table => {
            if t.human.is_empty() {
                return writeln!(out, "(none)");
            }
            let mut ct = comfy_table::Table::new();
            ct.load_preset(comfy_table::presets::NOTHING);
            ct.set_header(t.header.iter().map(|h| h.to_uppercase()));
            for r in &t.human {
                ct.add_row(r);
            }
            for line in ct.to_string().lines() {
                writeln!(out, "{}", line.trim_end())?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1 << 30), "1.0 GiB");
        assert_eq!(human_size(200 << 30), "200 GiB");
        assert_eq!(latency(1_500_000).0, "1.5 ms");
        assert_eq!(latency(812).0, "812 ns");
    }
}
