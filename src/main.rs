fn main() {
    std::process::exit(clnrm::cli::main());
}
