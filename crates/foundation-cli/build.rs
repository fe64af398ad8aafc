//! Links the `foundation` binary with the functions a node runs while it
//! starts and idles side by side (`symbol-order.txt`, written by
//! `symbol-order.py`), so a node maps a few MB of code instead of the
//! 64 KiB around each scattered one (ADR 028).
//!
//! Only where the linker is known to be LLD: x86_64 Linux (GNU) with Rust
//! 1.90 or later (its default linker there is the bundled `rust-lld`) and no
//! other linker configured. `FOUNDATION_SYMBOL_ORDER=0` turns it off. A
//! function missing from the file is linked as usual; the file only orders.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=symbol-order.txt");
    println!("cargo:rerun-if-env-changed=FOUNDATION_SYMBOL_ORDER");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let order = Path::new(&dir).join("symbol-order.txt");
    if order.exists() && links_with_lld() {
        println!(
            "cargo:rustc-link-arg-bin=foundation=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // Functions of other builds (another profile, changed dependencies)
        // are simply not found: no warning for each.
        println!("cargo:rustc-link-arg-bin=foundation=-Wl,--no-warn-symbol-ordering");
    }
}

fn links_with_lld() -> bool {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("FOUNDATION_SYMBOL_ORDER") == "0" {
        return false;
    }
    if var("TARGET") != "x86_64-unknown-linux-gnu" {
        return false;
    }
    // A linker chosen in Cargo's configuration or by flags may not be LLD.
    if std::env::var_os("RUSTC_LINKER").is_some()
        || std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
        || var("CARGO_ENCODED_RUSTFLAGS").contains("link")
    {
        return false;
    }
    rustc_minor().is_some_and(|minor| minor >= 90)
}

/// The minor version of the compiler building this crate (`1.x`).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}
