//! Checks that the front-end packages are installed before the binary embeds them.

fn main() {
    let htmx = "node_modules/htmx.org/dist/htmx.min.js";
    println!("cargo:rerun-if-changed={htmx}");
    println!("cargo:rerun-if-changed=package-lock.json");
    if !std::path::Path::new(htmx).exists() {
        panic!("{htmx} is missing: run `npm ci` first (it installs htmx from package-lock.json)");
    }
}
