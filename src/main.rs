//! The `zoha` binary: hands the command line to [`zoha::cli`] and exits with its status.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(zoha::cli::main_with_args(&args));
}
