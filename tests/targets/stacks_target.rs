// A Rust target for the unwinder (std only): a named thread parks in a distinctively named
// function; main waits for end of input.  Prints "READY pid".
use std::io::Read;
use std::thread;
use std::time::Duration;

#[inline(never)]
fn rust_parks_in_sleep() {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

#[inline(never)]
fn rust_waits_for_stdin() -> usize {
    let mut all = Vec::new();
    std::io::stdin().read_to_end(&mut all).unwrap_or(0)
}

fn main() {
    thread::Builder::new()
        .name("rust-parker".into())
        .spawn(rust_parks_in_sleep)
        .expect("spawn");
    println!("READY {}", std::process::id());
    std::process::exit(if rust_waits_for_stdin() == usize::MAX { 1 } else { 0 });
}
