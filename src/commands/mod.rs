//! One file per subcommand: the glue between the CLI and the library.

pub mod answers;
pub mod api;
pub mod approve;
pub mod audit;
pub mod check;
pub mod completions;
pub mod consumers;
pub mod doc;
pub mod due;
pub mod evidence;
pub mod exec;
pub mod list;
pub mod new;
pub mod runs;
pub mod sandbox;
pub mod show;
pub mod timeline_page;

use crate::ui;

/// Writes `text` to a new file with `mode`: never over an existing one (a key, an earlier
/// pack or export), and durably.
pub fn write_new(path: &std::path::Path, text: &str, mode: u32) -> crate::error::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |e: std::io::Error, help: &str| {
        crate::error::Error::usage(format!("cannot write {}: {e}", path.display()), help)
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| failed(e, "choose a file that does not exist yet"))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| failed(e, "check the disk"))
}

/// Columns as wide as their widest cell, two spaces apart (`kubectl get` style).
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    // A cell is cut to what a terminal shows (a stored name may be any length), its
    // control characters made visible.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let last = r.len().saturating_sub(1);
            r.iter()
                .enumerate()
                .map(|(i, c)| {
                    let shown: String = c
                        .chars()
                        .map(|ch| if ch.is_control() { '?' } else { ch })
                        .collect();
                    ui::truncate(&shown, if i == last { 400 } else { 120 })
                })
                .collect()
        })
        .collect();
    let rows = &rows;
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n {
                    c.to_string()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    ui::out(&line(header.to_vec()));
    for r in rows {
        ui::out(&line(r.iter().map(String::as_str).collect()));
    }
}
