//! `auraio-sim` command line (not built yet).

fn main() {
    println!("auraio-sim: not built yet (see the simulator issue); nothing to check");
}
