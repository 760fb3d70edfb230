//! `auraio-bench`: the fio-style workload runner (not built yet).

fn main() {
    println!("auraio-bench: not built yet (see the main-job issue)");
}
