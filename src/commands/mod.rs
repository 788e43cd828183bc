//! One file per subcommand: the glue between the CLI and the library.

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

use crate::ui;

/// Columns as wide as their widest cell, two spaces apart (`kubectl get` style).
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
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
